// A source feeds the store with declared objects: the manifests folder, or the Kubernetes API.
// Both report in "origins": a file in folder mode, one object in cluster mode. Replacing an origin's
// documents is how adds, changes and removals all reach the store.
import type { Origin } from '../api/resource.js';

/** One declared document before validation. `object` is undefined when it could not be parsed. */
export interface SourceDocument {
  origin: Origin;
  object: Record<string, unknown> | undefined;
  /**
   * Set when the document could not be parsed (YAML syntax), was over its parsing budget, or its
   * file could not be read; the message names the problem, `path` the field where it was found (when
   * one was), `reason` its condition reason (InvalidSpec when absent).
   */
  parseError?: { message: string; line?: number; path?: string; kind?: string; name?: string; namespace?: string; reason?: string };
}

export interface SourceListener {
  /** The documents of one origin now; an empty list removes the origin. */
  replace(origin: string, documents: SourceDocument[]): void;
  /** Several origins that changed together (a folder updated atomically): applied as one change. */
  replaceMany(changes: ReadonlyMap<string, SourceDocument[]>): void;
  /** The first full listing has been delivered (readiness). */
  synced(): void;
}

export interface ResourceSource {
  start(listener: SourceListener): Promise<void>;
  /** Re-reads everything (SIGHUP, POST /reload, periodic resync). */
  resync(): Promise<void>;
  stop(): Promise<void>;
}
