#!/usr/bin/env bash
# Installs the real peers the test suite talks to (Debian/Ubuntu), as root or through sudo.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
# chromium: the web console's browser test, driven by playwright-core (its own browser downloads cannot work here).
# python3-pymodbus imports serial (and serial_asyncio for RTU) but only recommends them.
PEERS=(mosquitto mosquitto-clients socat python3-pymodbus python3-serial python3-serial-asyncio python3-cbor2 libcoap3-bin softhsm2 libengine-pkcs11-openssl opensc openssl chromium)
missing=()
for package in "${PEERS[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The tests start their own brokers; the packaged service would hold port 1883 for nothing.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then $SUDO systemctl stop mosquitto || true; fi
echo "test peers installed: ${PEERS[*]}"
