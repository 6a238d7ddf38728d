// Writes this agent's entry of `status.nodes[]` with server-side apply, one field manager per node
// (`sensorlet/<node>`), so agents on different nodes never overwrite each other's entries
// (`status.nodes` is a listMap keyed by `name`). The apply body holds only that one entry: the API
// server keeps the other managers' entries and drops an entry this manager stops sending.
//
// Never blocks the caller: `write()` records the latest entry per object and returns. A sender
// coalesces to at most one PATCH per object per `minIntervalMs` (10 s) unless a condition flipped,
// and retries conflicts and failures with capped backoff. The pending set is bounded: one entry per
// object (latest wins) and at most `maxObjects` objects; beyond that new objects are dropped and
// counted (their next write tries again).
//
//   const writer = await createKubernetesStatusWriter({ connection /* or kubeconfigFile | inCluster */, nodeName, logger });
//   writer.write({ kind: 'Sensor', namespace: 'default', name: 'boiler' }, { observedGeneration: 3, conditions: [...] }, flipped);
//   writer.withdraw(ref);        // this node stopped acting on it (nodeSelector): remove our entry
//   writer.forget(ref);          // the object is gone: drop pending work
//   await writer.close();        // one last attempt for what is pending (bounded), then stop
import type { Kind } from '../api/schemas.js';
import { API_GROUP, API_VERSION } from '../api/schemas.js';
import { KIND_NAMES } from '../api/crds.js';
import type { Logger } from '../observability/logger.js';
import { apiErrorFrom, connectKubernetes, type ConnectOptions, type KubernetesConnection } from '../sources/kubernetes/connection.js';

export interface StatusRef {
  kind: Kind;
  namespace: string;
  name: string;
}

export interface KubernetesStatusWriterOptions extends ConnectOptions {
  connection?: KubernetesConnection;
  nodeName: string;
  logger: Logger;
  /** Minimum time between two writes of one object unless a condition flipped; default 10 s. */
  minIntervalMs?: number;
  backoff?: { initialMs: number; maxMs: number };
  /** At most this many objects with pending writes; default 10 000. */
  maxObjects?: number;
  /** How long `close()` waits for the last writes; default 500 ms (shutdown must end within 2 s even with the API server unreachable). */
  closeTimeoutMs?: number;
}

export interface KubernetesStatusWriter {
  readonly fieldManager: string;
  write(ref: StatusRef, nodeEntry: Record<string, unknown>, conditionFlipped: boolean): void;
  /**
   * This node no longer acts on the object (e.g. its nodeSelector stopped matching): apply an empty
   * `status.nodes`, so the server drops the entry this field manager owns. Written at once.
   */
  withdraw(ref: StatusRef): void;
  forget(ref: StatusRef): void;
  /** Counters for metrics and tests. */
  stats(): { writes: number; failures: number; dropped: number; pending: number };
  close(): Promise<void>;
}

interface ObjectState {
  ref: StatusRef;
  /** The entry to write; `null`: withdraw ours; `undefined`: nothing to write. */
  pending: Record<string, unknown> | null | undefined;
  urgent: boolean;
  lastSentAt: number;
  failures: number;
  inFlight: boolean;
  timer: NodeJS.Timeout | undefined;
}

export const STATUS_MIN_INTERVAL_MS = 10_000;
const APPLY_CONTENT_TYPE = 'application/apply-patch+yaml';

export function statusPath(ref: StatusRef): string {
  const plural = KIND_NAMES[ref.kind].plural;
  return `/apis/${API_GROUP}/v1alpha1/namespaces/${encodeURIComponent(ref.namespace)}/${plural}/${encodeURIComponent(ref.name)}/status`;
}

/**
 * The apply body: identity plus this node's entry, nothing else (everything sent is owned). With
 * `null`, no entry: server-side apply removes what this manager applied before and no longer sends.
 */
export function applyBody(ref: StatusRef, nodeName: string, nodeEntry: Record<string, unknown> | null): Record<string, unknown> {
  return {
    apiVersion: API_VERSION,
    kind: ref.kind,
    metadata: { name: ref.name, namespace: ref.namespace },
    status: { nodes: nodeEntry ? [{ ...nodeEntry, name: nodeName }] : [] },
  };
}

export async function createKubernetesStatusWriter(options: KubernetesStatusWriterOptions): Promise<KubernetesStatusWriter> {
  const connection = options.connection ?? (await connectKubernetes(options));
  const logger = options.logger.child({ component: 'status-writer' });
  const fieldManager = `sensorlet/${options.nodeName}`;
  const minIntervalMs = options.minIntervalMs ?? STATUS_MIN_INTERVAL_MS;
  const backoff = options.backoff ?? { initialMs: 1_000, maxMs: 60_000 };
  const maxObjects = options.maxObjects ?? 10_000;
  const states = new Map<string, ObjectState>();
  const counters = { writes: 0, failures: 0, dropped: 0 };
  let closed = false;

  const keyOf = (ref: StatusRef) => `${ref.kind}/${ref.namespace}/${ref.name}`;

  function schedule(state: ObjectState): void {
    if (closed || state.inFlight || state.pending === undefined) return;
    const now = Date.now();
    let due: number;
    if (state.failures > 0) {
      due = state.lastSentAt + Math.min(backoff.maxMs, backoff.initialMs * 2 ** Math.min(state.failures - 1, 20));
    } else {
      due = state.urgent ? now : state.lastSentAt + minIntervalMs;
    }
    clearTimeout(state.timer);
    state.timer = setTimeout(() => void send(state), Math.max(0, due - now));
  }

  async function send(state: ObjectState): Promise<void> {
    state.timer = undefined;
    const entry = state.pending;
    if (entry === undefined || state.inFlight) return;
    state.pending = undefined;
    state.urgent = false;
    state.inFlight = true;
    state.lastSentAt = Date.now();
    const path = statusPath(state.ref);
    try {
      const response = await connection.request('PATCH', path, {
        query: { fieldManager, force: 'true' },
        body: JSON.stringify(applyBody(state.ref, options.nodeName, entry)),
        contentType: APPLY_CONTENT_TYPE,
      });
      if (response.status >= 200 && response.status < 300) {
        counters.writes++;
        state.failures = 0;
      } else if (response.status === 404) {
        // The object is gone (or its CRD is): nothing left to report on.
        logger.debug({ path }, 'status target not found; dropping');
        state.failures = 0;
      } else if (response.status === 400 || response.status === 415 || response.status === 422) {
        // The server rejects the body itself; resending it cannot succeed.
        counters.failures++;
        state.failures = 0;
        logger.error({ path, err: apiErrorFrom('PATCH', path, response).message }, 'status write rejected');
      } else {
        throw apiErrorFrom('PATCH', path, response);
      }
    } catch (error) {
      counters.failures++;
      state.failures++;
      // Retry with the newest entry: a newer write() during the attempt wins over this one.
      if (state.pending === undefined) state.pending = entry;
      logger.warn({ path, err: error instanceof Error ? error.message : String(error), failures: state.failures }, 'status write failed; will retry');
    } finally {
      state.inFlight = false;
    }
    if (state.pending !== undefined) schedule(state);
    else if (!state.timer) pruneLater(state);
  }

  /** An idle object is forgotten once its coalescing window has passed, keeping the map small. */
  function pruneLater(state: ObjectState): void {
    state.timer = setTimeout(() => {
      state.timer = undefined;
      if (state.pending === undefined && !state.inFlight && Date.now() - state.lastSentAt >= minIntervalMs) states.delete(keyOf(state.ref));
    }, minIntervalMs);
    state.timer.unref();
  }

  function enqueue(ref: StatusRef, pending: Record<string, unknown> | null, urgent: boolean): void {
    if (closed) return;
    const key = keyOf(ref);
    let state = states.get(key);
    if (!state) {
      if (states.size >= maxObjects) {
        counters.dropped++;
        return;
      }
      state = { ref: { kind: ref.kind, namespace: ref.namespace, name: ref.name }, pending: undefined, urgent: false, lastSentAt: 0, failures: 0, inFlight: false, timer: undefined };
      states.set(key, state);
    }
    state.pending = pending;
    state.urgent ||= urgent;
    schedule(state);
  }

  return {
    fieldManager,
    write(ref, nodeEntry, conditionFlipped) {
      enqueue(ref, nodeEntry, conditionFlipped);
    },
    withdraw(ref) {
      // The entry's conditions disappear: as urgent as a condition flip.
      enqueue(ref, null, true);
    },
    forget(ref) {
      const state = states.get(keyOf(ref));
      if (!state) return;
      clearTimeout(state.timer);
      state.pending = undefined;
      states.delete(keyOf(ref));
    },
    stats: () => ({ ...counters, pending: [...states.values()].filter((state) => state.pending !== undefined).length }),
    async close() {
      if (closed) return;
      closed = true;
      const last: Promise<void>[] = [];
      for (const state of states.values()) {
        clearTimeout(state.timer);
        state.timer = undefined;
        if (state.pending !== undefined && !state.inFlight) last.push(send(state));
      }
      const timeout = new Promise<void>((resolve) => setTimeout(resolve, options.closeTimeoutMs ?? 500).unref());
      await Promise.race([Promise.all(last).then(() => undefined), timeout]);
      for (const state of states.values()) clearTimeout(state.timer);
      states.clear();
    },
  };
}
