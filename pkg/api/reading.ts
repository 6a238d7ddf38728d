// A reading is what a driver produces and a sink delivers. `(device, sensor, seq)` is unique and
// stable across restarts, so consumers of at-least-once delivery can drop duplicates with it.

export type Quality = 'good' | 'uncertain' | 'bad';

export interface Reading {
  device: string;
  sensor: string;
  namespace: string;
  /** The tenant of the connection it goes out on; absent until routing decides when the Sensor names none. */
  tenant?: string;
  seq: number;
  /** RFC 3339 time the value was sampled. */
  time: string;
  value?: number;
  values?: Record<string, number>;
  unit?: string;
  quality: Quality;
}

/** What a driver yields; the runner adds identity, sequence and unit. */
export interface Sample {
  value?: number;
  values?: Record<string, number>;
  /** Milliseconds since the epoch; the read time when absent. */
  time?: number;
  quality?: Quality;
}
