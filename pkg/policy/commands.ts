// Which programs the command drivers (the Sensor's and the Actuator's) may run: none unless the
// operator started the agent with --allow-command-driver, and only those on --command-allowlist
// when it is given.
import type { DriverPolicy } from './policy.js';

/** Why `executable` may not run under `policy`, or undefined when it may. */
export function commandRefusal(executable: string, policy: DriverPolicy): string | undefined {
  if (!policy.allowCommandDriver) {
    return 'the command driver is disabled; start the agent with --allow-command-driver to enable it';
  }
  // Exact match: a basename match would let /tmp/x/echo pass for /bin/echo.
  if (policy.commandAllowlist.length > 0 && !policy.commandAllowlist.includes(executable)) {
    return `${executable} is not in the command allowlist (${policy.commandAllowlist.join(', ')})`;
  }
  return undefined;
}
