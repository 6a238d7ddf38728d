// The stdout sink: one JSON line per reading on standard output. A batch counts as delivered once
// the write was handed to the OS, which is all a pipe can acknowledge.
//
// Standard output can go away under the agent (the reader of a pipe exits: `sensorlet run | head`,
// a log shipper restarts). Node then emits EPIPE as an 'error' event on process.stdout, which
// would end the whole agent if nobody listened. Here it is the sink's own failure: the Sink shows
// Connected=False (OutputClosed), its readings stay in the outbox, and every other Sink goes on.
import type { Reading } from '../../api/reading.js';
import { messageOf } from '../../api/errors.js';
import type { TransportFactory, Transport } from '../transport.js';
import { registerTransport } from '../registry.js';

/** Set once standard output failed; a closed pipe never opens again in this process. */
let outputError: Error | undefined;
const outputListeners = new Set<(error: Error) => void>();
let watching = false;

function watchOutput(): void {
  if (watching) return;
  watching = true;
  process.stdout.on('error', (error: Error) => {
    outputError ??= error;
    for (const listener of outputListeners) listener(error);
  });
}

function closedOutput(error: Error): Error {
  return Object.assign(new Error(`standard output is closed (${messageOf(error)}); readings stay queued`), { code: 'OutputClosed' });
}

export const stdoutTransport: TransportFactory<Record<string, never>> = {
  name: 'stdout',
  create(_config, context): Transport {
    const report = (error: Error) => context.onState({ connected: false, reason: 'OutputClosed', message: closedOutput(error).message });
    return {
      start() {
        watchOutput();
        outputListeners.add(report);
        if (outputError) report(outputError);
        else context.onState({ connected: true });
      },
      send(readings: Reading[]) {
        if (outputError || process.stdout.destroyed) return Promise.reject(closedOutput(outputError ?? new Error('destroyed')));
        let text = '';
        for (const reading of readings) text += JSON.stringify({ ...reading, tenant: reading.tenant ?? context.identity.tenant }) + '\n';
        return new Promise<void>((resolve, reject) => process.stdout.write(text, (error) => (error ? reject(closedOutput(error)) : resolve())));
      },
      async close() {
        outputListeners.delete(report);
      },
    };
  },
};

registerTransport(stdoutTransport);
