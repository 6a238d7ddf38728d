// The recent values of each Sensor, for the console's sparklines and reading rates: a small ring
// per Sensor, one point per second at most (the last value of that second, and how many readings
// it had), so that ten minutes of history costs the same whatever a Sensor's interval.
//
// Budget: MAX_POINTS points of 10 bytes per Sensor (6 KB), grown as they fill, for at most
// MAX_SENSORS Sensors: a manifest folder of thousands of Sensors costs at most ~6 MB here; the ones
// past the limit show no sparkline (the console says so), everything else works as before.
import type { Reading } from '../api/reading.js';

/** Ten minutes at one point per second. */
export const MAX_POINTS = 600;
export const MAX_SENSORS = 1000;
const INITIAL_POINTS = 16;
/** The window over which the reading rate is averaged. */
export const RATE_WINDOW_SECONDS = 60;

/** Points as two parallel arrays, oldest first: epoch seconds and values. */
export interface Series {
  t: number[];
  v: number[];
  /** For multi-value readings: which of `values` is charted (the first, in the driver's order). */
  field?: string;
}

class Ring {
  seconds = new Uint32Array(INITIAL_POINTS);
  values = new Float64Array(INITIAL_POINTS);
  counts = new Uint16Array(INITIAL_POINTS);
  /** Index of the next write; `size` points end just before it. */
  next = 0;
  size = 0;
  field: string | undefined;

  get capacity(): number {
    return this.seconds.length;
  }

  /** The newest point's second, or -1. */
  get lastSecond(): number {
    return this.size === 0 ? -1 : this.seconds[(this.next - 1 + this.capacity) % this.capacity];
  }

  /** The oldest point's second, or -1. */
  get firstSecond(): number {
    return this.size === 0 ? -1 : this.seconds[(this.next - this.size + this.capacity) % this.capacity];
  }

  add(second: number, value: number): void {
    const last = this.lastSecond;
    // Readings of the same second fold into one point; a reading older than the newest point (a
    // driver's own timestamps going back) joins the newest point too: the ring stays ordered.
    if (this.size > 0 && second <= last) {
      const index = (this.next - 1 + this.capacity) % this.capacity;
      this.values[index] = value;
      if (this.counts[index] < 0xffff) this.counts[index]++;
      return;
    }
    if (this.size === this.capacity && this.capacity < MAX_POINTS) this.grow();
    this.seconds[this.next] = second;
    this.values[this.next] = value;
    this.counts[this.next] = 1;
    this.next = (this.next + 1) % this.capacity;
    this.size = Math.min(this.size + 1, this.capacity);
  }

  private grow(): void {
    const capacity = Math.min(MAX_POINTS, this.capacity * 2);
    const seconds = new Uint32Array(capacity);
    const values = new Float64Array(capacity);
    const counts = new Uint16Array(capacity);
    // Full, so the oldest point is at `next`: unroll into order.
    for (let i = 0; i < this.size; i++) {
      const from = (this.next + i) % this.capacity;
      seconds[i] = this.seconds[from];
      values[i] = this.values[from];
      counts[i] = this.counts[from];
    }
    this.next = this.size;
    this.seconds = seconds;
    this.values = values;
    this.counts = counts;
  }

  /** Calls `each` for every point newer than `afterSecond`, oldest first. */
  forEachAfter(afterSecond: number, each: (second: number, value: number, count: number) => void): void {
    const start = (this.next - this.size + this.capacity) % this.capacity;
    for (let i = 0; i < this.size; i++) {
      const index = (start + i) % this.capacity;
      if (this.seconds[index] > afterSecond) each(this.seconds[index], this.values[index], this.counts[index]);
    }
  }
}

export class ReadingHistory {
  private readonly rings = new Map<string, Ring>();

  constructor(private readonly maxSensors = MAX_SENSORS) {}

  /** The UTC second ("YYYY-MM-DDTHH:MM:SS") of the last time parsed, and that second since the epoch. */
  private cachedPrefix = '';
  private cachedSecond = 0;

  /**
   * The second (since the epoch) of a reading's time. This runs for every reading: readings of one
   * second share their first 19 characters in UTC ("...Z"), so Date.parse runs once per second,
   * not once per reading.
   */
  private secondOf(time: string): number | undefined {
    const utc = time.length >= 20 && time.charCodeAt(time.length - 1) === 90 /* Z */;
    if (utc && this.cachedPrefix !== '' && time.startsWith(this.cachedPrefix)) return this.cachedSecond;
    const millis = Date.parse(time);
    if (!Number.isFinite(millis)) return undefined;
    const second = Math.floor(millis / 1000);
    if (utc && (time[19] === '.' || time[19] === 'Z')) {
      this.cachedPrefix = time.slice(0, 19);
      this.cachedSecond = second;
    }
    return second;
  }

  /** Called with every batch a Sensor emits. Readings without a number (bad quality, no value) are skipped. */
  record(sensorKey: string, readings: readonly Reading[]): void {
    let ring = this.rings.get(sensorKey);
    for (const reading of readings) {
      let value = reading.value;
      let field: string | undefined;
      if (value === undefined && reading.values) {
        for (const name in reading.values) {
          field = name;
          value = reading.values[name];
          break;
        }
      }
      if (typeof value !== 'number' || !Number.isFinite(value)) continue;
      const second = this.secondOf(reading.time);
      if (second === undefined) continue;
      if (!ring) {
        if (this.rings.size >= this.maxSensors) return;
        ring = new Ring();
        this.rings.set(sensorKey, ring);
      }
      ring.field = field;
      ring.add(second, value);
    }
  }

  /** Whether a Sensor has a ring (false past MAX_SENSORS). */
  has(sensorKey: string): boolean {
    return this.rings.has(sensorKey);
  }

  /**
   * The Sensor's points newer than `afterSecond` (all of them by default); at most `maxPoints`,
   * evenly spaced and always with the newest (a sparkline's width needs no more).
   */
  series(sensorKey: string, afterSecond = -1, maxPoints = MAX_POINTS): Series | undefined {
    const ring = this.rings.get(sensorKey);
    if (!ring) return undefined;
    const series: Series = { t: [], v: [] };
    if (ring.field !== undefined) series.field = ring.field;
    ring.forEachAfter(afterSecond, (second, value) => {
      series.t.push(second);
      series.v.push(value);
    });
    if (series.t.length > maxPoints) {
      const stride = Math.ceil(series.t.length / maxPoints);
      const last = series.t.length - 1;
      const keep = (_: number, index: number) => (last - index) % stride === 0;
      series.t = series.t.filter(keep);
      series.v = series.v.filter(keep);
    }
    return series;
  }

  /** The newest point's second of a Sensor, or -1. */
  lastSecond(sensorKey: string): number {
    return this.rings.get(sensorKey)?.lastSecond ?? -1;
  }

  /**
   * Readings per second over the last RATE_WINDOW_SECONDS complete seconds (the current one is
   * still filling), or over the complete seconds the ring has seen when it is younger; counting the
   * readings folded into each point.
   */
  rate(sensorKey: string, nowMillis: number): number {
    const ring = this.rings.get(sensorKey);
    if (!ring || ring.size === 0) return 0;
    const end = Math.floor(nowMillis / 1000) - 1;
    const from = end - RATE_WINDOW_SECONDS + 1;
    let readings = 0;
    ring.forEachAfter(from - 1, (second, _value, count) => {
      if (second <= end) readings += count;
    });
    if (readings === 0) return 0;
    // From the window's start, or from the ring's first point when it is younger than the window.
    return readings / (end - Math.max(from, ring.firstSecond) + 1);
  }

  /** Drops the rings of Sensors that are gone. */
  retain(sensorKeys: ReadonlySet<string>): void {
    for (const key of this.rings.keys()) if (!sensorKeys.has(key)) this.rings.delete(key);
  }

  get sensors(): number {
    return this.rings.size;
  }

  /** Whether a Sensor without a ring yet would get none (MAX_SENSORS reached). */
  get full(): boolean {
    return this.rings.size >= this.maxSensors;
  }
}
