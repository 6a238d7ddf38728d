// This node's NodeReport: the compact state of everything the node runs, in one object, so the
// agent's API writes per minute do not grow with the number of resources. One write at most every
// `intervalMs` (10 s); changes in between, condition flips included, are coalesced into the next
// write; nothing changed, nothing written (liveness is the heartbeat Lease's job).
//
// Writes are updates carrying the resourceVersion last written (a create the first time); a 409
// Conflict re-reads the version and tries again at the next interval. Never blocks the caller.
import { API_VERSION, REPORT_KIND } from '../api/schemas.js';
import type { Logger } from '../observability/logger.js';
import { apiErrorFrom, type KubernetesConnection } from '../sources/kubernetes/connection.js';
import { NODE_LABEL, type OwnerReference } from './lease.js';
import type { ReportedResource } from './rollup.js';

export interface NodeReportObject {
  apiVersion: string;
  kind: typeof REPORT_KIND;
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string>; ownerReferences?: OwnerReference[] };
  nodeName: string;
  resources?: ReportedResource[];
  omittedResources?: number;
}

/**
 * A report stays far below etcd's 1.5 MiB object limit whatever manifests ask a node to run:
 * beyond this, messages are dropped, then entries (counted in omittedResources).
 */
export const MAX_REPORT_BYTES = 256 * 1024;

export function reportsPath(namespace: string, name?: string): string {
  return `/apis/sensorlet.io/v1alpha1/namespaces/${encodeURIComponent(namespace)}/nodereports${name ? `/${encodeURIComponent(name)}` : ''}`;
}

export interface NodeReportWriterOptions {
  connection: KubernetesConnection;
  namespace: string;
  nodeName: string;
  nodeUid(): string | undefined;
  intervalMs: number;
  logger: Logger;
  /** How long close() waits for the last write; default 500 ms (shutdown ends within 2 s). */
  closeTimeoutMs?: number;
}

const resourceKey = (resource: { kind: string; namespace: string; name: string }) => `${resource.kind}/${resource.namespace}/${resource.name}`;

export class NodeReportWriter {
  private readonly resources = new Map<string, ReportedResource>();
  private dirty = true;
  private lastWriteAt = 0;
  private resourceVersion: string | undefined;
  private writtenOwner: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Looks once per interval whether the Node's uid became known (the report is then owned by it). */
  private ownerCheck: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | undefined;
  private started = false;
  private closed = false;
  writes = 0;
  failures = 0;

  constructor(private readonly options: NodeReportWriterOptions) {}

  /** Records a resource's outcome on this node (undefined: the node no longer runs it). */
  set(resource: { kind: string; namespace: string; name: string }, outcome: Omit<ReportedResource, 'kind' | 'namespace' | 'name'> | undefined): void {
    const key = resourceKey(resource);
    const previous = this.resources.get(key);
    if (!outcome) {
      if (!previous) return;
      this.resources.delete(key);
    } else {
      // Called on every status change (every reading updates facts): compare fields, not JSON.
      if (
        previous &&
        previous.state === outcome.state &&
        previous.reason === outcome.reason &&
        previous.message === outcome.message &&
        previous.observedGeneration === outcome.observedGeneration
      ) {
        return;
      }
      this.resources.set(key, { kind: resource.kind, namespace: resource.namespace, name: resource.name, ...outcome });
    }
    this.markDirty();
  }

  /** The report as it would be written now. */
  body(): NodeReportObject {
    const { namespace, nodeName } = this.options;
    const uid = this.options.nodeUid();
    return {
      apiVersion: API_VERSION,
      kind: REPORT_KIND,
      metadata: {
        name: nodeName,
        namespace,
        labels: { [NODE_LABEL]: nodeName },
        ...(uid ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name: nodeName, uid }] } : {}),
        ...(this.resourceVersion ? { resourceVersion: this.resourceVersion } : {}),
      },
      nodeName,
      ...withinBudget([...this.resources.values()]),
    };
  }

  start(): void {
    this.started = true;
    this.schedule();
    this.ownerCheck = setInterval(() => this.schedule(), this.options.intervalMs);
    this.ownerCheck.unref();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    clearTimeout(this.timer);
    clearInterval(this.ownerCheck);
    const last = this.started && this.dirty && !this.inFlight ? this.write() : this.inFlight;
    this.closed = true;
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, this.options.closeTimeoutMs ?? 500).unref());
    await Promise.race([last ?? Promise.resolve(), timeout]);
  }

  /** Stops without writing what is pending. */
  abandon(): void {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.ownerCheck);
  }

  private markDirty(): void {
    this.dirty = true;
    this.schedule();
  }

  private schedule(): void {
    if (!this.started || this.closed || this.timer || this.inFlight) return;
    if (this.options.nodeUid() !== this.writtenOwner) this.dirty = true;
    if (!this.dirty) return;
    const due = Math.max(0, this.lastWriteAt + this.options.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.inFlight = this.write().finally(() => {
        this.inFlight = undefined;
        this.schedule();
      });
    }, due);
  }

  private async write(): Promise<void> {
    const { connection, namespace, nodeName, logger } = this.options;
    this.dirty = false;
    this.lastWriteAt = Date.now();
    const body = this.body();
    const creating = !this.resourceVersion;
    const path = creating ? reportsPath(namespace) : reportsPath(namespace, nodeName);
    try {
      const response = await connection.request(creating ? 'POST' : 'PUT', path, { body: JSON.stringify(body), contentType: 'application/json' });
      if (response.status === 200 || response.status === 201) {
        this.resourceVersion = (response.body as NodeReportObject).metadata.resourceVersion;
        this.writtenOwner = body.metadata.ownerReferences?.[0]?.uid;
        this.writes++;
        return;
      }
      this.dirty = true;
      this.failures++;
      if (response.status === 409 || response.status === 404) {
        // Exists already (a restart) or changed under us (a leader's cleanup): learn its version.
        const current = await connection.request('GET', reportsPath(namespace, nodeName));
        this.resourceVersion = current.status === 200 ? (current.body as NodeReportObject).metadata.resourceVersion : undefined;
        // The version is fresh: try again in a second rather than a whole interval.
        this.lastWriteAt = Date.now() - this.options.intervalMs + Math.min(1_000, this.options.intervalMs);
        return;
      }
      logger.warn({ path, err: apiErrorFrom(creating ? 'POST' : 'PUT', path, response).message }, 'node report write failed; will retry');
    } catch (error) {
      this.dirty = true;
      this.failures++;
      logger.warn({ path, err: error instanceof Error ? error.message : String(error) }, 'node report write failed; will retry');
    }
  }
}

/** The report's entries within MAX_REPORT_BYTES, sorted so that the same state is the same object. */
function withinBudget(all: ReportedResource[]): { resources: ReportedResource[]; omittedResources?: number } {
  const resources = all.sort((a, b) => (resourceKey(a) < resourceKey(b) ? -1 : 1));
  const size = (entries: ReportedResource[]) => Buffer.byteLength(JSON.stringify(entries));
  if (size(resources) <= MAX_REPORT_BYTES) return { resources };
  const terse = resources.map(({ message: _message, ...rest }) => rest);
  let bytes = 2;
  let kept = 0;
  for (const entry of terse) {
    const next = Buffer.byteLength(JSON.stringify(entry)) + 1;
    if (bytes + next > MAX_REPORT_BYTES) break;
    bytes += next;
    kept++;
  }
  return kept === terse.length ? { resources: terse } : { resources: terse.slice(0, kept), omittedResources: terse.length - kept };
}
