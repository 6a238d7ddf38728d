// What the console shows of one resource: its conditions and the few facts of its kind that a
// person looks at, in bounded form. Every string here may come from a manifest or a device
// (names, reasons, messages): the page only ever puts them in as text, and they are clipped here
// so that one resource cannot make every update large.
import type { ReadingHistory } from './history.js';

/** Longest condition message sent to the page; the admin API has the whole. */
const MAX_MESSAGE = 1000;
const MAX_STRING = 256;

export interface ConditionView {
  type: string;
  status: string;
  reason: string;
  message: string;
  since?: string;
}

export interface ResourceView {
  key: string;
  kind: string;
  namespace: string;
  name: string;
  generation?: number;
  observedGeneration?: number;
  conditions: ConditionView[];
  /** Kind-specific figures (see sensorFields, sinkFields...). */
  [field: string]: unknown;
}

/** An item of the admin API's resource list (pkg/agent listResources). */
export interface ListedItem {
  kind: string;
  metadata: { name: string; namespace: string; generation?: number };
  spec?: unknown;
  status?: { nodes?: Record<string, unknown>[] };
}

export const clip = (value: unknown, max = MAX_STRING): string | undefined =>
  typeof value === 'string' ? (value.length > max ? `${value.slice(0, max - 1)}…` : value) : undefined;
const num = (value: unknown): number | undefined => (typeof value === 'number' && Number.isFinite(value) ? value : undefined);
const record = (value: unknown): Record<string, unknown> => (value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {});
/** A map of numbers (drops by reason, a multi-value reading), with bounded keys and at most 20 entries. */
function numberMap(value: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, count] of Object.entries(record(value)).slice(0, 20)) {
    const n = num(count);
    if (n !== undefined) out[clip(key, 64)!] = n;
  }
  return out;
}

export interface ViewContext {
  history: ReadingHistory;
  now: number;
  /** Readings per second the far end acknowledged, per Sink key (from the published counter). */
  deliveryRate(sinkKey: string, name: string, namespace: string): number | undefined;
}

export function resourceView(item: ListedItem, context: ViewContext): ResourceView {
  const { kind } = item;
  const namespace = item.metadata.namespace;
  const name = item.metadata.name;
  const key = `${kind}/${namespace}/${name}`;
  const entry = item.status?.nodes?.[0] ?? {};
  const conditions = (Array.isArray(entry.conditions) ? entry.conditions : []).slice(0, 16).map((condition: Record<string, unknown>) => ({
    type: clip(condition.type, 64) ?? '',
    status: clip(condition.status, 16) ?? 'Unknown',
    reason: clip(condition.reason, 128) ?? '',
    message: clip(condition.message, MAX_MESSAGE) ?? '',
    since: clip(condition.lastTransitionTime, 40),
  }));
  const view: ResourceView = {
    key,
    kind: clip(kind, 64)!,
    namespace: clip(namespace, 253)!,
    name: clip(name, 253)!,
    generation: num(item.metadata.generation),
    observedGeneration: num(entry.observedGeneration),
    conditions,
  };
  const spec = record(item.spec);
  switch (kind) {
    case 'Sensor':
      return Object.assign(view, sensorFields(key, spec, entry, context));
    case 'Sink':
      return Object.assign(view, sinkFields(key, name, namespace, spec, entry, context));
    case 'Firmware':
      return Object.assign(view, firmwareFields(spec, entry));
    case 'Certificate':
      return Object.assign(view, certificateFields(entry));
    default:
      return view;
  }
}

function sensorFields(key: string, spec: Record<string, unknown>, entry: Record<string, unknown>, context: ViewContext) {
  const last = record(entry.lastReading);
  const values = record(last.values);
  return {
    driver: clip(Object.keys(record(spec.driver))[0], 32),
    interval: clip(spec.interval, 32),
    unit: clip(spec.unit, 32),
    lastReading: entry.lastReading
      ? {
          time: clip(last.time, 40),
          value: num(last.value),
          values: Object.keys(values).length ? numberMap(values) : undefined,
        }
      : undefined,
    readings: num(entry.readings),
    errors: num(entry.errors),
    rate: Math.round(context.history.rate(key, context.now) * 1000) / 1000,
    // Past the rings' budget a Sensor has no sparkline; the page says why.
    historyLimited: !context.history.has(key) && context.history.full,
  };
}

function sinkFields(key: string, name: string, namespace: string, spec: Record<string, unknown>, entry: Record<string, unknown>, context: ViewContext) {
  return {
    protocol: clip(entry.protocol, 16) ?? clip(['mqtt', 'coap', 'stdout'].find((protocol) => protocol in spec), 16),
    // Shown with any password removed (the status facts are redacted where they are written).
    url: clip(entry.url, 512),
    connected: typeof entry.connected === 'boolean' ? entry.connected : undefined,
    queued: num(entry.queued),
    queuedBytes: num(entry.queuedBytes),
    oldestQueued: clip(entry.oldestQueued, 40) ?? null,
    dropped: numberMap(entry.dropped),
    rejected: numberMap(entry.rejected),
    deliveryRate: context.deliveryRate(key, name, namespace),
  };
}

function firmwareFields(spec: Record<string, unknown>, entry: Record<string, unknown>) {
  const progress = record(entry.progress);
  const error = record(entry.lastError);
  return {
    target: clip(spec.target, 32),
    phase: clip(entry.phase, 32),
    currentVersion: clip(entry.currentVersion, 64),
    targetVersion: clip(entry.targetVersion, 64) ?? clip(spec.version, 64),
    progress: entry.progress ? { bytes: num(progress.bytes), total: num(progress.total) } : undefined,
    lastError: entry.lastError ? { reason: clip(error.reason, 128), message: clip(error.message, MAX_MESSAGE) } : undefined,
  };
}

function certificateFields(entry: Record<string, unknown>) {
  return {
    notBefore: clip(entry.notBefore, 40),
    notAfter: clip(entry.notAfter, 40),
    tenant: clip(entry.tenant, 253),
    device: clip(entry.device, 253),
    subject: clip(entry.subject),
    fingerprint: clip(entry.fingerprint, 128),
  };
}
