// This agent's view of each resource: conditions, observedGeneration and kind-specific facts. It is
// served as `status.nodes[]` (one entry: this agent's) by the admin API, kept in the state dir across
// restarts, and, in cluster mode, handed on every change to the node's NodeReport (pkg/fleet).
import path from 'node:path';
import { setCondition, removeCondition, type Condition, type ConditionUpdate } from './conditions.js';
import { readJsonFile, writeJsonFileAtomic } from './json-file.js';
import { redactCredentials } from '../api/redact.js';
import type { Clock } from '../observability/clock.js';

export interface NodeStatus {
  observedGeneration?: number;
  conditions: Condition[];
  /** lastReading, readings, errors (Sensor); connected, queued, oldestQueued (Sink); notAfter... (Certificate). */
  facts: Record<string, unknown>;
}

export type StatusListener = (key: string, entry: Record<string, unknown> | undefined, conditionFlipped: boolean) => void;

export class StatusStore {
  private readonly statuses = new Map<string, NodeStatus>();
  private readonly listeners: StatusListener[] = [];
  private persistTimer: NodeJS.Timeout | undefined;
  private readonly file: string | undefined;
  /** Told about every persist: the error when it failed, undefined when it succeeded. */
  onPersist: ((error?: unknown) => void) | undefined;

  constructor(
    readonly nodeName: string,
    private readonly clock: Clock,
    stateDir?: string,
  ) {
    this.file = stateDir ? path.join(stateDir, 'status.json') : undefined;
    if (this.file) {
      const saved = readJsonFile<Record<string, NodeStatus>>(this.file, {});
      for (const [key, status] of Object.entries(saved)) this.statuses.set(key, status);
    }
  }

  onChange(listener: StatusListener): void {
    this.listeners.push(listener);
  }

  get(key: string): NodeStatus | undefined {
    return this.statuses.get(key);
  }

  keys(): string[] {
    return [...this.statuses.keys()];
  }

  /** Applies condition updates and facts in one change; notifies listeners once. */
  update(
    key: string,
    change: { observedGeneration?: number; conditions?: ConditionUpdate[]; removeConditions?: string[]; facts?: Record<string, unknown> },
  ): void {
    let status = this.statuses.get(key);
    if (!status) {
      status = { conditions: [], facts: {} };
      this.statuses.set(key, status);
    }
    let flipped = false;
    if (change.observedGeneration !== undefined && status.observedGeneration !== change.observedGeneration) {
      status.observedGeneration = change.observedGeneration;
      flipped = true;
    }
    const now = change.conditions ? new Date(this.clock.now()) : undefined;
    for (const condition of change.conditions ?? []) {
      // Messages often carry what a library said about a URL: never with its password.
      const update = { ...condition, message: typeof condition.message === 'string' ? redactCredentials(condition.message) : condition.message, observedGeneration: condition.observedGeneration ?? status.observedGeneration };
      flipped = setCondition(status.conditions, update, now!) || flipped;
    }
    for (const type of change.removeConditions ?? []) flipped = removeCondition(status.conditions, type) || flipped;
    if (change.facts) Object.assign(status.facts, change.facts);
    this.changed(key, flipped);
  }

  delete(key: string): void {
    if (!this.statuses.delete(key)) return;
    this.changed(key, true);
  }

  /** The `status.nodes[]` entry for this agent. */
  nodeEntry(key: string): Record<string, unknown> | undefined {
    const status = this.statuses.get(key);
    if (!status) return undefined;
    return { name: this.nodeName, observedGeneration: status.observedGeneration, conditions: status.conditions, ...status.facts };
  }

  /**
   * Writes pending changes now (shutdown, and once a second from a timer). A write the disk refuses
   * (full, read-only) is reported through onPersist and never thrown: status lives in memory and
   * the next change tries again; losing a second of persisted status is acceptable, a crash is not.
   */
  persist(): void {
    if (this.persistTimer) clearTimeout(this.persistTimer);
    this.persistTimer = undefined;
    if (!this.file) return;
    try {
      writeJsonFileAtomic(this.file, Object.fromEntries(this.statuses));
    } catch (error) {
      this.onPersist?.(error);
      return;
    }
    this.onPersist?.();
  }

  private changed(key: string, conditionFlipped: boolean): void {
    if (this.listeners.length > 0) {
      const entry = this.nodeEntry(key);
      for (const listener of this.listeners) listener(key, entry, conditionFlipped);
    }
    // Status changes with every reading; persisting once a second bounds the write rate.
    if (this.file && !this.persistTimer) {
      this.persistTimer = setTimeout(() => this.persist(), 1000);
      this.persistTimer.unref();
    }
  }
}
