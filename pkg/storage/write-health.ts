// Which state files could not be written, and why. Status, generations and sequence writes that
// fail on a full, read-only or failing disk are reported here instead of escaping: each failure
// counts in a metric, and the first failure and the recovery of each area are logged once (a full
// disk fails every write, so logging each would flood the log the disk cannot hold anyway).
import { messageOf } from '../api/errors.js';
import { storageReason } from './durable-file.js';

export interface WriteHealthSink {
  warn(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
}

export type WriteErrorCounter = (area: string, reason: string) => void;

export class WriteHealth {
  private readonly failing = new Map<string, string>();

  constructor(
    private readonly log: WriteHealthSink,
    private readonly count: WriteErrorCounter,
  ) {}

  /** A write of `area` failed (error) or succeeded (undefined). */
  report(area: string, error?: unknown): void {
    if (error === undefined) {
      if (this.failing.delete(area)) this.log.info({ area }, 'state writes succeed again');
      return;
    }
    const reason = storageReason(error);
    this.count(area, reason);
    if (this.failing.get(area) === reason) return;
    this.failing.set(area, reason);
    this.log.warn({ area, reason, err: messageOf(error) }, 'state write failed; kept in memory and retried');
  }

  /** Areas whose last write failed, with the reason. */
  failures(): Map<string, string> {
    return new Map(this.failing);
  }
}
