// The desired state: every declared resource, validated, with its generation. Sources replace the
// documents of one origin (a file, or one API object) at a time; the store re-validates the whole
// set (duplicate names and references span origins) and reports which keys changed.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { validateDocuments, type ValidatedResource } from '../api/validate-set.js';
import type { StoredResource, FieldError, Origin } from '../api/resource.js';
import type { Kind } from '../api/schemas.js';
import type { SourceDocument, SourceListener } from '../sources/source.js';
import { readJsonFile, writeJsonFileAtomic } from './json-file.js';

/** A document that is not a resource of its own (no kind or name, or a duplicate); shown by the admin API. */
export interface OrphanError {
  origin: Origin;
  errors: FieldError[];
}

interface GenerationRecord {
  generation: number;
  /** SHA-256 of the canonical spec: the state dir must not hold what a spec may carry (credentials). */
  spec: string;
}

const specDigest = (canonical: string): string => createHash('sha256').update(canonical).digest('hex');

/** JSON with sorted keys, so that a reordered but equal spec is not a change. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    item && typeof item === 'object' && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : item,
  );
}

export class ResourceStore implements SourceListener {
  private readonly origins = new Map<string, SourceDocument[]>();
  private resources = new Map<string, StoredResource>();
  private orphans: OrphanError[] = [];
  private readonly generations: Map<string, GenerationRecord>;
  private readonly changeListeners: ((keys: string[]) => void)[] = [];
  private readonly syncedListeners: (() => void)[] = [];
  private readonly file: string | undefined;
  /** Told about every write of the generations file: the error when it failed, undefined when it succeeded. */
  onPersist: ((error?: unknown) => void) | undefined;
  isSynced = false;

  constructor(stateDir?: string) {
    this.file = stateDir ? path.join(stateDir, 'generations.json') : undefined;
    this.generations = new Map(Object.entries(this.file ? readJsonFile<Record<string, GenerationRecord>>(this.file, {}) : {}));
  }

  onChange(listener: (keys: string[]) => void): void {
    this.changeListeners.push(listener);
  }

  onSynced(listener: () => void): void {
    this.syncedListeners.push(listener);
  }

  replace(origin: string, documents: SourceDocument[]): void {
    this.replaceMany(new Map([[origin, documents]]));
  }

  replaceMany(changes: ReadonlyMap<string, SourceDocument[]>): void {
    for (const [origin, documents] of changes) {
      if (documents.length === 0) this.origins.delete(origin);
      else this.origins.set(origin, documents);
    }
    // The first listing arrives one origin at a time; validating the whole set after each would
    // cost O(origins²). It is validated once, when the source says the listing is complete.
    if (this.isSynced) this.revalidate();
  }

  synced(): void {
    if (!this.isSynced) {
      this.isSynced = true;
      this.revalidate();
    }
    for (const listener of this.syncedListeners) listener();
  }

  originNames(): string[] {
    return [...this.origins.keys()];
  }

  get<K extends Kind>(key: string): StoredResource<K> | undefined {
    return this.resources.get(key) as StoredResource<K> | undefined;
  }

  list<K extends Kind>(kind?: K): StoredResource<K>[] {
    const all = [...this.resources.values()] as StoredResource<K>[];
    return kind ? all.filter((resource) => resource.kind === kind) : all;
  }

  orphanErrors(): OrphanError[] {
    return this.orphans;
  }

  private revalidate(): void {
    const documents = [...this.origins.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .flatMap(([, docs]) => docs);
    const validated = validateDocuments(documents);
    const next = new Map<string, StoredResource>();
    const orphans: OrphanError[] = [];
    for (const resource of validated) {
      if (!resource.name || resource.kind === 'Unknown') {
        orphans.push({ origin: resource.origin, errors: resource.errors });
        continue;
      }
      // A later duplicate must not replace the resource that keeps running; its error stays visible.
      if (next.has(resource.key)) {
        orphans.push({ origin: resource.origin, errors: resource.errors });
        continue;
      }
      next.set(resource.key, this.withGeneration(resource));
    }
    const changed = new Set<string>();
    for (const [key, resource] of next) {
      const previous = this.resources.get(key);
      if (!previous || canonicalJson(previous.raw) !== canonicalJson(resource.raw) || canonicalJson(previous.errors) !== canonicalJson(resource.errors)) {
        changed.add(key);
      }
    }
    for (const key of this.resources.keys()) if (!next.has(key)) changed.add(key);
    for (const key of changed) if (!next.has(key)) this.generations.delete(key);
    this.resources = next;
    this.orphans = orphans;
    if (changed.size === 0) return;
    this.persistGenerations();
    for (const listener of this.changeListeners) listener([...changed]);
  }

  /** A write the disk refuses is reported, not thrown: generations stay right in memory and the next change writes them all again. */
  private persistGenerations(): void {
    if (!this.file) return;
    try {
      writeJsonFileAtomic(this.file, Object.fromEntries(this.generations));
    } catch (error) {
      this.onPersist?.(error);
      return;
    }
    this.onPersist?.();
  }

  /** In folder mode the generation counts spec changes, like the API server's metadata.generation. */
  private withGeneration(resource: ValidatedResource): StoredResource {
    const canonical = canonicalJson((resource.raw as { spec?: unknown }).spec ?? null);
    const spec = specDigest(canonical);
    const declared = (resource.raw as { metadata?: { generation?: unknown } }).metadata?.generation;
    let record = this.generations.get(resource.key);
    // Files written before specs were kept as digests hold the spec itself: same spec, same generation.
    if (record && record.spec === canonical) record = { generation: record.generation, spec };
    if (typeof declared === 'number') record = { generation: declared, spec };
    else if (!record) record = { generation: 1, spec };
    else if (record.spec !== spec) record = { generation: record.generation + 1, spec };
    this.generations.set(resource.key, record);
    return { ...resource, kind: resource.kind as Kind, generation: record.generation } as StoredResource;
  }
}
