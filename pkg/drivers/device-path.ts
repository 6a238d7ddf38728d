// Which device nodes the serial and Modbus RTU drivers may open. A manifest names a port; opening it
// reads whatever arrives there, so a port that is really a terminal (/dev/pts/N, /dev/tty1, the
// console) would hand a manifest author the keystrokes typed on it, passwords and PINs included, as
// readings. The operator lists the device name prefixes that are serial lines
// (`--serial-allow-prefix`); the decision is about the real path, so /dev/serial/by-id/... links
// are judged by the /dev/ttyUSB0 they lead to, and a link to a terminal is refused.
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { SensorletError } from '../api/errors.js';
import { refusal, type DriverPolicy } from '../policy/policy.js';

/** The real path of `port`, or the path as written when it does not exist (yet): a USB adapter unplugged. */
function realPortPath(port: string): string {
  try {
    return realpathSync(port);
  } catch {
    return path.resolve(port);
  }
}

/** Throws DeviceNotAllowed when `port` is not a serial line the operator allowed. */
export function checkSerialDevice(port: string, policy: Pick<DriverPolicy, 'serialAllowPrefixes'>, field: string): void {
  const real = realPortPath(port);
  // Device names are prefixes (/dev/ttyUSB allows /dev/ttyUSB0), folders end in a slash.
  if (policy.serialAllowPrefixes.some((prefix) => real.startsWith(prefix))) return;
  throw new SensorletError('DeviceNotAllowed', refusal(`${field} ${port} is not a serial line the agent may open`, '--serial-allow-prefix'));
}
