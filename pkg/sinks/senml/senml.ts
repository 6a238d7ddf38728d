// SenML (RFC 8428) packs for a chunk of readings, shared by every sink that offers `payload: senml-*`.
//
// Naming: the base name is `<device>/<sensor>/` (both are Kubernetes-style names, so the resolved name
// only holds the characters RFC 8428 section 4.5.1 allows). A single-value reading is one record
// with no `n` (its name is the base name); a multi-value reading is one record per value, named by the
// value's key (`<device>/<sensor>/<key>`). `bn` is repeated only when the sensor changes.
// Time: the first record carries `bt` (seconds since the epoch, millisecond precision); every record
// carries `t` relative to it, so one chunk spanning many readings stays compact.
// Units: `bu` when every record of the pack has the same unit, else `u` per record — a base unit
// cannot be unset, so a pack mixing units with unit-less readings must spell each one out.
// Readings with neither `value` nor `values` have no SenML form (a record needs a value) and are left out.
import { encode as encodeCbor } from 'cborg';
import type { Reading } from '../../api/reading.js';

export const SENML_JSON_CONTENT_FORMAT = 110;
export const SENML_CBOR_CONTENT_FORMAT = 112;
export const SENML_JSON_MEDIA_TYPE = 'application/senml+json';
export const SENML_CBOR_MEDIA_TYPE = 'application/senml+cbor';

/** One SenML record with the labels this encoder uses (RFC 8428 section 4.1). */
export interface SenmlRecord {
  bn?: string;
  bt?: number;
  bu?: string;
  n?: string;
  u?: string;
  v: number;
  t?: number;
}

/** RFC 8428 section 6 (table 4): CBOR map keys for the labels above. */
export const SENML_CBOR_LABELS: Readonly<Record<keyof SenmlRecord, number>> = {
  bn: -2,
  bt: -3,
  bu: -4,
  n: 0,
  u: 1,
  v: 2,
  t: 6,
};

export function senmlBaseName(reading: Pick<Reading, 'device' | 'sensor'>): string {
  return `${reading.device}/${reading.sensor}/`;
}

/** The pack (array of records) for a chunk of readings, in reading order. */
export function toSenmlRecords(readings: readonly Reading[]): SenmlRecord[] {
  const withValues = readings.filter((reading) => reading.value !== undefined || reading.values !== undefined);
  if (withValues.length === 0) return [];
  const units = new Set(withValues.map((reading) => reading.unit));
  const baseUnit = units.size === 1 ? withValues[0].unit : undefined;
  const baseTimeMs = Date.parse(withValues[0].time);
  if (Number.isNaN(baseTimeMs)) throw new Error(`reading ${withValues[0].sensor}#${withValues[0].seq} has an invalid time ${withValues[0].time}`);

  const records: SenmlRecord[] = [];
  let currentBaseName: string | undefined;
  for (const reading of withValues) {
    const timeMs = Date.parse(reading.time);
    if (Number.isNaN(timeMs)) throw new Error(`reading ${reading.sensor}#${reading.seq} has an invalid time ${reading.time}`);
    const values: Array<[string | undefined, number]> =
      reading.value !== undefined ? [[undefined, reading.value]] : Object.entries(reading.values ?? {});
    for (const [name, value] of values) {
      const record: Partial<SenmlRecord> = {};
      if (records.length === 0) {
        record.bt = baseTimeMs / 1000;
        if (baseUnit !== undefined) record.bu = baseUnit;
      }
      const baseName = senmlBaseName(reading);
      if (baseName !== currentBaseName) {
        record.bn = baseName;
        currentBaseName = baseName;
      }
      if (name !== undefined) record.n = name;
      if (baseUnit === undefined && reading.unit !== undefined) record.u = reading.unit;
      record.v = value;
      // Integer milliseconds first, then seconds: avoids float drift like 0.30000000000000004.
      const offsetMs = timeMs - baseTimeMs;
      if (offsetMs !== 0) record.t = offsetMs / 1000;
      records.push(record as SenmlRecord);
    }
  }
  return records;
}

export function encodeSenmlJson(readings: readonly Reading[]): Buffer {
  return Buffer.from(JSON.stringify(toSenmlRecords(readings)));
}

// Integer labels need a Map as input; cborg writes plain RFC 8949 CBOR (no tags), an array of maps.
export function encodeSenmlCbor(readings: readonly Reading[]): Buffer {
  const pack = toSenmlRecords(readings).map((record) => {
    const map = new Map<number, string | number>();
    for (const [label, value] of Object.entries(record)) {
      map.set(SENML_CBOR_LABELS[label as keyof SenmlRecord], value as string | number);
    }
    return map;
  });
  return Buffer.from(encodeCbor(pack));
}
