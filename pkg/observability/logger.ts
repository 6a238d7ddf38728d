// One pino logger per agent; components take child loggers (`logger.child({ component })`).
import { pino, type DestinationStream, type Logger } from 'pino';
import { lazyRequire } from '../api/lazy-require.js';

export type { Logger } from 'pino';
export type LogFormat = 'json' | 'pretty';

// pino-pretty formats in process (a stream, not a pino.transport worker thread): only people
// reading a terminal ask for it, and a worker costs a thread and its heap for every log line.
const loadPretty = lazyRequire<(options: { destination: number; colorize: boolean }) => DestinationStream>('pino-pretty');

export function createLogger(options: { level?: string; format?: LogFormat; destination?: number } = {}): Logger {
  const level = options.level ?? 'info';
  // Logs go to stderr: stdout belongs to the stdout sink's JSON lines.
  const destination = options.destination ?? 2;
  if (options.format === 'pretty') {
    return pino({ level }, loadPretty()({ destination, colorize: false }));
  }
  return pino({ level }, pino.destination({ dest: destination, sync: false }));
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
