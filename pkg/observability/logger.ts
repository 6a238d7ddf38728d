// One pino logger per agent; components take child loggers (`logger.child({ component })`).
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';
export type LogFormat = 'json' | 'pretty';

export function createLogger(options: { level?: string; format?: LogFormat; destination?: number } = {}): Logger {
  const level = options.level ?? 'info';
  // Logs go to stderr: stdout belongs to the stdout sink's JSON lines.
  const destination = options.destination ?? 2;
  if (options.format === 'pretty') {
    return pino({ level }, pino.transport({ target: 'pino-pretty', options: { destination, colorize: false } }));
  }
  return pino({ level }, pino.destination({ dest: destination, sync: false }));
}

export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
