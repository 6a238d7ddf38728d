#!/usr/bin/env bash
# Installs the real peers the test suite talks to (Debian/Ubuntu), as root or through sudo.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
# chromium: the web console's browser test, driven by playwright-core (its own browser downloads cannot work here).
# python3-pymodbus imports serial (and serial_asyncio for RTU) but only recommends them.
# The release artifacts (npm run image / package, test/integration/release-artifacts): skopeo and
# umoci read the image, lintian and systemd-analyze check the package and its unit, adduser runs in
# its postinst; readelf finds the libraries Node needs; each architecture's strip trims its Node.
PEERS=(mosquitto mosquitto-clients socat python3-pymodbus python3-serial python3-serial-asyncio python3-cbor2 libcoap3-bin softhsm2 libengine-pkcs11-openssl opensc openssl chromium
  skopeo umoci lintian systemd adduser file binutils binutils-x86-64-linux-gnu binutils-aarch64-linux-gnu)
missing=()
for package in "${PEERS[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# Each image's shared libraries come from Debian's packages of its architecture (apt-get download).
update_needed=false
for arch in amd64 arm64; do
  if [ "$(dpkg --print-architecture)" != "$arch" ] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    $SUDO dpkg --add-architecture "$arch"
    update_needed=true
  fi
done
if [ ${#missing[@]} -gt 0 ] || $update_needed; then
  $SUDO apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The tests start their own brokers; the packaged service would hold port 1883 for nothing.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then $SUDO systemctl stop mosquitto || true; fi
echo "test peers installed: ${PEERS[*]}"
