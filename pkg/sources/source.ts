// A source feeds the store with declared objects: the manifests folder, or the Kubernetes API.
// Both report in "origins": a file in folder mode, one object in cluster mode. Replacing an origin's
// documents is how adds, changes and removals all reach the store.
import type { Origin } from '../api/resource.js';

/** One declared document before validation. `object` is undefined when it could not be parsed. */
export interface SourceDocument {
  origin: Origin;
  object: Record<string, unknown> | undefined;
  /**
   * Set when the document could not be parsed (YAML syntax) or was over its parsing budget; the
   * message names the problem, `path` the field where it was found (when one was).
   */
  parseError?: { message: string; line?: number; path?: string; kind?: string; name?: string; namespace?: string };
}

export interface SourceListener {
  /** The documents of one origin now; an empty list removes the origin. */
  replace(origin: string, documents: SourceDocument[]): void;
  /** The first full listing has been delivered (readiness). */
  synced(): void;
}

export interface ResourceSource {
  start(listener: SourceListener): Promise<void>;
  /** Re-reads everything (SIGHUP, POST /reload, periodic resync). */
  resync(): Promise<void>;
  stop(): Promise<void>;
}
