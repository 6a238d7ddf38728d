// The stdout sink: one JSON line per reading on standard output. A batch counts as delivered once
// the write was handed to the OS, which is all a pipe can acknowledge.
import type { Reading } from '../../api/reading.js';
import type { TransportFactory, Transport } from '../transport.js';
import { registerTransport } from '../registry.js';

export const stdoutTransport: TransportFactory<Record<string, never>> = {
  name: 'stdout',
  create(_config, context): Transport {
    return {
      start() {
        context.onState({ connected: true });
      },
      send(readings: Reading[]) {
        let text = '';
        for (const reading of readings) text += JSON.stringify({ ...reading, tenant: reading.tenant ?? context.identity.tenant }) + '\n';
        return new Promise<void>((resolve, reject) => process.stdout.write(text, (error) => (error ? reject(error) : resolve())));
      },
      async close() {},
    };
  },
};

registerTransport(stdoutTransport);
