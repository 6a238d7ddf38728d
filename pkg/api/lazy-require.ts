// Loads a CommonJS dependency on first use. serialport, modbus-serial and node-forge cost 11-16 MB
// of RSS each; an agent without serial sensors or PKCS#12 files should not pay for them.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export function lazyRequire<T>(name: string): () => T {
  let loaded: T | undefined;
  return () => (loaded ??= require(name) as T);
}
