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

/** Set once the reader went away (EPIPE): a closed pipe never opens again in this process. */
let outputError: Error | undefined;
const outputListeners = new Set<(error: Error) => void>();
let watching = false;

/**
 * Only EPIPE closes the output for good. Other write errors (a full disk under `> file`) fail the
 * batch, which stays queued and is retried like any failed send.
 */
function latchIfClosed(error: Error): void {
  if ((error as NodeJS.ErrnoException).code !== 'EPIPE' || outputError) return;
  outputError = error;
  for (const listener of outputListeners) listener(error);
}

function watchOutput(): void {
  if (watching) return;
  watching = true;
  // Node emits a failed write's error here too (after its callback); unheard, it ends the process.
  process.stdout.on('error', latchIfClosed);
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
        if (outputError) return Promise.reject(closedOutput(outputError));
        let text = '';
        for (const reading of readings) text += JSON.stringify({ ...reading, tenant: reading.tenant ?? context.identity.tenant }) + '\n';
        return new Promise<void>((resolve, reject) =>
          process.stdout.write(text, (error) => {
            if (!error) return resolve();
            latchIfClosed(error);
            reject(outputError ? closedOutput(error) : Object.assign(new Error(`writing to standard output failed: ${messageOf(error)}`), { code: 'OutputWriteFailed' }));
          }),
        );
      },
      async close() {
        outputListeners.delete(report);
      },
    };
  },
};

registerTransport(stdoutTransport);
