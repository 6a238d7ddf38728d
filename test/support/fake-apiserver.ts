// An in-test Kubernetes API server: enough of the real HTTP protocol for @kubernetes/client-node's
// ListWatch and for server-side apply, so the cluster source is tested end to end without mocking
// the library (DESIGN.md, "Kubernetes mode").
//
// What it speaks, as the real apiserver does:
// - list: `GET /apis/{group}/{version}[/namespaces/{ns}]/{plural}` and `/api/v1[...]` for nodes and
//   secrets → `{kind: XList, apiVersion, metadata: {resourceVersion}, items}`; `fieldSelector`
//   `metadata.name=` / `metadata.namespace=` is honoured.
// - watch: `?watch=true|1&resourceVersion=N` → HTTP 200, chunked, one JSON event per line
//   (`ADDED|MODIFIED|DELETED|BOOKMARK|ERROR`). Events after N are replayed from the history; an
//   empty version starts with synthetic ADDED events for what exists. BOOKMARKs only when the client
//   sent `allowWatchBookmarks=true`. A version older than the compacted history gets an ERROR event
//   carrying a `410 Expired` Status and the stream ends (what kube-apiserver does for a watch).
// - status apply: `PATCH .../{plural}/{name}/status` with `application/apply-patch+yaml`, a required
//   `fieldManager`, optional `force`. `status.nodes` is merged as a listMap keyed by `name`: each
//   manager owns the entries it applied and an entry it stops sending is removed.
// - token review: `POST /apis/authentication.k8s.io/v1/tokenreviews` → 201 with the TokenReview and
//   `status.authenticated` (+ `status.user`) for the tokens registered with `addToken`; `POST
//   /apis/authorization.k8s.io/v1/subjectaccessreviews` → 201 with `status.allowed` from the
//   non-resource rules given to `allowNonResource` (RBAC's nonResourceURLs: a path, or a prefix
//   ending in `*`, and verbs; a user or one of its groups). Both answer 400 to a body of another kind.
// - label selectors on list and watch (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`,
//   comma-separated terms ANDed); field selectors `metadata.name` / `metadata.namespace` with `=`,
//   `==`, `!=`; any other field answers 400 BadRequest, as kube-apiserver does for a field label it
//   does not support.
// - create: `POST` on a collection → 201, 409 AlreadyExists; `metadata.generateName` is not spoken.
// - update: `PUT` on an object → 200; a `metadata.resourceVersion` that is not the stored one answers
//   409 Conflict ("the object has been modified"); without one the update is unconditional; 404 when
//   the object does not exist. The status subresource is kept on a main-resource update.
// - delete: `DELETE` on an object → 200 with the last state; objects whose `ownerReferences` name the
//   deleted object's uid are deleted too (the garbage collector's background cascade).
// - status merge patch: `PATCH .../status` with `application/merge-patch+json` (RFC 7386: null removes).
// - Leases (`coordination.k8s.io/v1`) and NodeReports (`sensorlet.io/v1alpha1`, no status subresource).
// Per caller (the bearer token of the Authorization header): writes and watch events delivered are
// counted (`callerStats`), so a fleet of simulated agents can be measured one by one.
// Not spoken: discovery, protobuf, authentication of the caller beyond recording its Authorization header.
import http from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import yaml from 'js-yaml';

export type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; [key: string]: unknown };
  [key: string]: unknown;
};

interface ResourceType {
  kind: string;
  plural: string;
  /** `sensorlet.io/v1alpha1` or `v1`. */
  apiVersion: string;
  namespaced: boolean;
  /** The core API omits kind/apiVersion on list items; custom resources keep them. */
  itemsCarryKind: boolean;
  /** A status subresource: writes of the main resource keep status; generation counts spec changes. */
  statusSubresource: boolean;
}

const RESOURCE_TYPES: ResourceType[] = [
  { kind: 'Sensor', plural: 'sensors', apiVersion: 'sensorlet.io/v1alpha1', namespaced: true, itemsCarryKind: true, statusSubresource: true },
  { kind: 'Sink', plural: 'sinks', apiVersion: 'sensorlet.io/v1alpha1', namespaced: true, itemsCarryKind: true, statusSubresource: true },
  { kind: 'Certificate', plural: 'certificates', apiVersion: 'sensorlet.io/v1alpha1', namespaced: true, itemsCarryKind: true, statusSubresource: true },
  { kind: 'Firmware', plural: 'firmwares', apiVersion: 'sensorlet.io/v1alpha1', namespaced: true, itemsCarryKind: true, statusSubresource: true },
  { kind: 'Actuator', plural: 'actuators', apiVersion: 'sensorlet.io/v1alpha1', namespaced: true, itemsCarryKind: true, statusSubresource: true },
  { kind: 'NodeReport', plural: 'nodereports', apiVersion: 'sensorlet.io/v1alpha1', namespaced: true, itemsCarryKind: true, statusSubresource: false },
  { kind: 'Node', plural: 'nodes', apiVersion: 'v1', namespaced: false, itemsCarryKind: false, statusSubresource: false },
  { kind: 'Secret', plural: 'secrets', apiVersion: 'v1', namespaced: true, itemsCarryKind: false, statusSubresource: false },
  { kind: 'Lease', plural: 'leases', apiVersion: 'coordination.k8s.io/v1', namespaced: true, itemsCarryKind: false, statusSubresource: false },
];

/** What one caller (bearer token) cost the server: writes it made, watch events it was sent. */
export interface CallerStats {
  writes: number;
  /** GETs: single objects and lists (a watch is counted in watchEvents, not here). */
  reads: number;
  watchEvents: number;
}

export interface RecordedPatch {
  path: string;
  contentType: string;
  fieldManager: string | undefined;
  force: boolean;
  body: Record<string, unknown>;
  status: number;
  /** Date.now() when the request arrived (coalescing checks). */
  at: number;
}

export interface RecordedRequest {
  method: string;
  url: string;
  authorization: string | undefined;
}

interface StoredEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  type_: ResourceType;
  object: KubeObject;
  /** For MODIFIED: the object before, so a selector watch sees it enter (ADDED) or leave (DELETED). */
  previous?: KubeObject;
}

interface OpenWatch {
  type_: ResourceType;
  selector: Selector;
  bookmarks: boolean;
  res: http.ServerResponse;
  caller: CallerStats;
}

const TOKEN_REVIEWS = '/apis/authentication.k8s.io/v1/tokenreviews';
const SUBJECT_ACCESS_REVIEWS = '/apis/authorization.k8s.io/v1/subjectaccessreviews';

/** The history kept for watch replay; older events are compacted (a watch from before gets 410). */
const MAX_HISTORY = 10_000;

export class FakeApiServer {
  readonly patches: RecordedPatch[] = [];
  readonly requests: RecordedRequest[] = [];
  private readonly server: http.Server;
  private readonly objects = new Map<string, KubeObject>();
  private readonly history: StoredEvent[] = [];
  private readonly watches = new Set<OpenWatch>();
  /** Field manager → object key → the listMap names it owns in status.nodes. */
  private readonly ownership = new Map<string, Map<string, Set<string>>>();
  private revision = 1;
  private compactedBefore = 0;
  private patchFailures: number[] = [];
  private listFailures: number[] = [];
  private uidCounter = 0;
  /** Tokens the TokenReview API authenticates, and the user each one is. */
  private readonly tokens = new Map<string, { username: string; uid: string; groups: string[] }>();
  /** RBAC-like non-resource rules for SubjectAccessReview. */
  private readonly nonResourceRules: { subject: string; paths: string[]; verbs: string[] }[] = [];
  /** Every TokenReview and SubjectAccessReview spec received, in order. */
  readonly reviews: { kind: string; spec: Record<string, any> }[] = [];
  /** How many watch requests were answered with a 410 Expired ERROR event. */
  goneAnswers = 0;
  /** How many creates and updates were answered 409 (AlreadyExists or Conflict). */
  conflictAnswers = 0;
  /** Writes and watch events per bearer token (see CallerStats). */
  readonly callerStats = new Map<string, CallerStats>();
  /** The largest object stored so far, in bytes of JSON (etcd's limit is 1.5 MiB). */
  largestObjectBytes = 0;
  /** Keep every request in `requests` (a fleet bench turns this off: it makes millions). */
  recordRequests = true;
  port = 0;

  private constructor() {
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  static async start(): Promise<FakeApiServer> {
    const fake = new FakeApiServer();
    await new Promise<void>((resolve) => fake.server.listen(0, '127.0.0.1', resolve));
    fake.port = (fake.server.address() as AddressInfo).port;
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /**
   * Writes a kubeconfig for this server (plain http needs insecure-skip-tls-verify in client-node).
   * A distinct `token` per agent lets `callerStats` and `requests` tell the agents apart.
   */
  writeKubeconfig(dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-kube-')), namespace?: string, token = 'fake-token'): string {
    const file = path.join(dir, 'kubeconfig.yaml');
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'agent', user: { token } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'agent', ...(namespace ? { namespace } : {}) } }],
      'current-context': 'fake',
    };
    writeFileSync(file, yaml.dump(config));
    return file;
  }

  async close(): Promise<void> {
    for (const watch of this.watches) watch.res.destroy();
    this.watches.clear();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- test helpers ------------------------------------------------------------------------

  get resourceVersion(): string {
    return String(this.revision);
  }

  /** Creates or updates an object (kind decides the resource). Returns the stored copy. */
  apply(object: KubeObject): KubeObject {
    const type_ = typeForKind(object.kind);
    const namespace = type_.namespaced ? (object.metadata.namespace ?? 'default') : undefined;
    const key = objectKey(type_, namespace, object.metadata.name);
    const previous = this.objects.get(key);
    const stored = structuredClone(object);
    stored.apiVersion = type_.apiVersion;
    stored.kind = type_.kind;
    stored.metadata = { ...stored.metadata, ...(namespace ? { namespace } : {}) };
    if (previous) {
      stored.metadata.uid = previous.metadata.uid;
      stored.metadata.creationTimestamp = previous.metadata.creationTimestamp;
      this.carryOver(type_, previous, stored);
    } else {
      this.initialise(type_, stored);
    }
    this.store(type_, key, stored, previous ? 'MODIFIED' : 'ADDED');
    return structuredClone(stored);
  }

  /** What the server keeps across an update: uid, creation time, status (subresource), generation. */
  private carryOver(type_: ResourceType, previous: KubeObject, stored: KubeObject): void {
    stored.metadata.uid = previous.metadata.uid;
    stored.metadata.creationTimestamp = previous.metadata.creationTimestamp;
    if (type_.statusSubresource) {
      // The status subresource: a write of the main resource does not change status.
      stored.status = previous.status;
      const specChanged = JSON.stringify(previous.spec) !== JSON.stringify(stored.spec);
      const generation = Number(previous.metadata.generation ?? 1);
      stored.metadata.generation = specChanged ? generation + 1 : generation;
    } else if (previous.metadata.generation !== undefined) {
      stored.metadata.generation = previous.metadata.generation;
    } else delete stored.metadata.generation;
  }

  private initialise(type_: ResourceType, stored: KubeObject): void {
    stored.metadata.uid = `uid-${++this.uidCounter}`;
    stored.metadata.creationTimestamp = new Date().toISOString();
    if (type_.statusSubresource) stored.metadata.generation = 1;
    else delete stored.metadata.generation;
  }

  delete(kind: string, namespace: string | undefined, name: string): boolean {
    const type_ = typeForKind(kind);
    return this.deleteKey(type_, objectKey(type_, type_.namespaced ? (namespace ?? 'default') : undefined, name)) !== undefined;
  }

  private deleteKey(type_: ResourceType, key: string): KubeObject | undefined {
    const previous = this.objects.get(key);
    if (!previous) return undefined;
    this.objects.delete(key);
    const deleted = structuredClone(previous);
    deleted.metadata.resourceVersion = String(++this.revision);
    this.record({ rv: this.revision, type: 'DELETED', type_, object: deleted });
    for (const owned of this.ownership.values()) owned.delete(key);
    // The garbage collector: dependents whose ownerReferences name this uid go too.
    const uid = previous.metadata.uid;
    for (const [dependentKey, dependent] of [...this.objects]) {
      const owners = (dependent.metadata.ownerReferences ?? []) as { uid?: string }[];
      if (uid && owners.some((owner) => owner.uid === uid)) this.deleteKey(typeForKind(dependent.kind), dependentKey);
    }
    return deleted;
  }

  /** Every stored object of a kind (copies), e.g. the Leases or NodeReports of a namespace. */
  listObjects(kind: string, namespace?: string): KubeObject[] {
    return [...this.objects.values()]
      .filter((object) => object.kind === kind && (!namespace || object.metadata.namespace === namespace))
      .map((object) => structuredClone(object));
  }

  private caller(authorization: string | undefined): CallerStats {
    const token = (authorization ?? '').replace(/^Bearer\s+/i, '');
    let stats = this.callerStats.get(token);
    if (!stats) this.callerStats.set(token, (stats = { writes: 0, reads: 0, watchEvents: 0 }));
    return stats;
  }

  /** Removes an object without a watch event: simulates an event a client lost (only a relist sees it). */
  deleteSilently(kind: string, namespace: string | undefined, name: string): boolean {
    const type_ = typeForKind(kind);
    return this.objects.delete(objectKey(type_, type_.namespaced ? (namespace ?? 'default') : undefined, name));
  }

  get(kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const type_ = typeForKind(kind);
    const object = this.objects.get(objectKey(type_, type_.namespaced ? (namespace ?? 'default') : undefined, name));
    return object ? structuredClone(object) : undefined;
  }

  setNodeLabels(nodeName: string, labels: Record<string, string>): KubeObject {
    const node = this.get('Node', undefined, nodeName) ?? { apiVersion: 'v1', kind: 'Node', metadata: { name: nodeName } };
    return this.apply({ ...node, metadata: { ...node.metadata, labels } });
  }

  /** Compacts the history and ends every open watch with a 410 Expired ERROR event. */
  expireWatches(): void {
    this.compactedBefore = this.revision + 1;
    this.history.length = 0;
    for (const watch of this.watches) {
      writeEvent(watch.res, { type: 'ERROR', object: goneStatus() });
      watch.res.end();
    }
    this.watches.clear();
  }

  /** Drops every open watch: `destroy` resets the socket, `end` closes the stream cleanly. */
  dropWatches(mode: 'destroy' | 'end' = 'destroy'): number {
    const count = this.watches.size;
    for (const watch of this.watches) {
      if (mode === 'end') watch.res.end();
      else watch.res.destroy();
    }
    this.watches.clear();
    return count;
  }

  /** Sends a BOOKMARK at the current version to watches that asked for bookmarks. */
  bookmark(): void {
    for (const watch of this.watches) {
      if (!watch.bookmarks) continue;
      writeEvent(watch.res, {
        type: 'BOOKMARK',
        object: { kind: watch.type_.kind, apiVersion: watch.type_.apiVersion, metadata: { resourceVersion: String(this.revision) } },
      });
    }
  }

  openWatchCount(kind?: string): number {
    return [...this.watches].filter((watch) => !kind || watch.type_.kind === kind).length;
  }

  /** The next `count` status PATCHes answer `status` (409 Conflict by default) instead of applying. */
  failNextPatches(count: number, status = 409): void {
    for (let i = 0; i < count; i++) this.patchFailures.push(status);
  }

  /** A token TokenReview authenticates as this user (a ServiceAccount's name is system:serviceaccount:NS:NAME). */
  addToken(token: string, username: string, groups: string[] = ['system:authenticated']): void {
    this.tokens.set(token, { username, uid: `uid-${username}`, groups });
  }

  /** Lets a user or group use non-resource URLs (ClusterRole `nonResourceURLs` + `verbs`). */
  allowNonResource(subject: string, paths: string[], verbs: string[]): void {
    this.nonResourceRules.push({ subject, paths, verbs });
  }

  /** Kinds (plural names) whose CRD is "not installed": every request for them answers 404. */
  readonly missingKinds = new Set<string>();

  /** The next `count` list requests (GET of a collection without watch) answer `status` (500 by default). */
  failNextLists(count: number, status = 500): void {
    for (let i = 0; i < count; i++) this.listFailures.push(status);
  }

  // ---- protocol ----------------------------------------------------------------------------

  private store(type_: ResourceType, key: string, object: KubeObject, type: 'ADDED' | 'MODIFIED'): void {
    object.metadata.resourceVersion = String(++this.revision);
    const previous = this.objects.get(key);
    this.objects.set(key, object);
    this.largestObjectBytes = Math.max(this.largestObjectBytes, Buffer.byteLength(JSON.stringify(object)));
    this.record({ rv: this.revision, type, type_, object: structuredClone(object), previous: type === 'MODIFIED' ? previous : undefined });
  }

  private record(event: StoredEvent): void {
    this.history.push(event);
    if (this.history.length > MAX_HISTORY) {
      const dropped = this.history.splice(0, this.history.length - MAX_HISTORY);
      this.compactedBefore = dropped[dropped.length - 1].rv + 1;
    }
    for (const watch of this.watches) deliver(watch, event);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.recordRequests) this.requests.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    const caller = this.caller(req.headers.authorization);
    const url = new URL(req.url ?? '/', this.url);
    if (req.method !== 'GET') caller.writes++;
    else if (url.searchParams.get('watch') !== 'true' && url.searchParams.get('watch') !== '1') caller.reads++;
    if (req.method === 'POST' && (url.pathname === TOKEN_REVIEWS || url.pathname === SUBJECT_ACCESS_REVIEWS)) {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => this.review(url.pathname, Buffer.concat(chunks).toString('utf8'), res));
      return;
    }
    const route = parseRoute(url.pathname);
    if (!route || this.missingKinds.has(route.type_.plural)) return sendStatus(res, 404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
    const query = url.searchParams;
    let selector: Selector;
    try {
      selector = parseSelectors(query.get('labelSelector'), query.get('fieldSelector'));
    } catch (error) {
      return sendStatus(res, 400, 'BadRequest', (error as Error).message);
    }
    if (req.method === 'GET' && !route.name) {
      const watching = query.get('watch') === 'true' || query.get('watch') === '1';
      return watching ? this.watch(route, selector, query, res, caller) : this.list(route, selector, res);
    }
    if (req.method === 'GET' && route.name && !route.subresource) {
      const object = this.objects.get(objectKey(route.type_, route.namespace, route.name));
      if (!object) return sendStatus(res, 404, 'NotFound', `${route.type_.plural} "${route.name}" not found`);
      return sendJson(res, 200, object);
    }
    if (req.method === 'DELETE' && route.name && !route.subresource) {
      const deleted = this.deleteKey(route.type_, objectKey(route.type_, route.namespace, route.name));
      if (!deleted) return sendStatus(res, 404, 'NotFound', `${route.type_.plural} "${route.name}" not found`);
      return sendJson(res, 200, deleted);
    }
    const withBody = (then: (text: string) => void) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => then(Buffer.concat(chunks).toString('utf8')));
    };
    const contentType = (req.headers['content-type'] ?? '').split(';')[0].trim();
    if (req.method === 'PATCH' && route.name && route.subresource === 'status') {
      if (contentType === 'application/merge-patch+json') return withBody((text) => this.mergePatchStatus(route, text, res));
      return withBody((text) => this.patchStatus(route, query, req.headers['content-type'] ?? '', text, res));
    }
    if (req.method === 'POST' && !route.name) return withBody((text) => this.create(route, text, res));
    if (req.method === 'PUT' && route.name && !route.subresource) return withBody((text) => this.update(route, text, res));
    sendStatus(res, 405, 'MethodNotAllowed', `${req.method} is not supported by the fake API server on ${url.pathname}`);
  }

  /** A JSON body for create/update/merge patch, or a 400 answer. */
  private jsonBody(text: string, res: http.ServerResponse): KubeObject | undefined {
    try {
      const body = JSON.parse(text) as KubeObject;
      if (body && typeof body === 'object') return body;
    } catch {
      // answered below
    }
    sendStatus(res, 400, 'BadRequest', 'the body is not a JSON object');
    return undefined;
  }

  private create(route: Route, text: string, res: http.ServerResponse): void {
    const body = this.jsonBody(text, res);
    if (!body) return;
    const name = body.metadata?.name;
    if (!name) return sendStatus(res, 422, 'Invalid', 'metadata.name: Required value');
    if (body.kind !== route.type_.kind || body.apiVersion !== route.type_.apiVersion) return sendStatus(res, 400, 'BadRequest', `expected ${route.type_.apiVersion} ${route.type_.kind}`);
    if (route.type_.namespaced && body.metadata.namespace && body.metadata.namespace !== route.namespace) {
      return sendStatus(res, 400, 'BadRequest', 'the namespace of the object does not match the namespace of the request');
    }
    const key = objectKey(route.type_, route.namespace, name);
    if (this.objects.has(key)) {
      this.conflictAnswers++;
      return sendStatus(res, 409, 'AlreadyExists', `${route.type_.plural} "${name}" already exists`);
    }
    const stored = structuredClone(body);
    stored.metadata = { ...stored.metadata, ...(route.namespace ? { namespace: route.namespace } : {}) };
    delete stored.metadata.resourceVersion;
    this.initialise(route.type_, stored);
    this.store(route.type_, key, stored, 'ADDED');
    sendJson(res, 201, stored);
  }

  private update(route: Route, text: string, res: http.ServerResponse): void {
    const body = this.jsonBody(text, res);
    if (!body) return;
    const key = objectKey(route.type_, route.namespace, route.name ?? '');
    const previous = this.objects.get(key);
    if (!previous) return sendStatus(res, 404, 'NotFound', `${route.type_.plural} "${route.name}" not found`);
    if (body.metadata?.name !== route.name) return sendStatus(res, 400, 'BadRequest', 'the name of the object does not match the name on the URL');
    const expected = body.metadata.resourceVersion;
    if (expected !== undefined && expected !== '' && expected !== previous.metadata.resourceVersion) {
      this.conflictAnswers++;
      return sendStatus(res, 409, 'Conflict', `Operation cannot be fulfilled on ${route.type_.plural} "${route.name}": the object has been modified; please apply your changes to the latest version and try again`);
    }
    const stored = structuredClone(body);
    stored.apiVersion = route.type_.apiVersion;
    stored.kind = route.type_.kind;
    stored.metadata = { ...stored.metadata, ...(route.namespace ? { namespace: route.namespace } : {}) };
    this.carryOver(route.type_, previous, stored);
    if (JSON.stringify({ ...stored, metadata: { ...stored.metadata, resourceVersion: undefined } }) === JSON.stringify({ ...previous, metadata: { ...previous.metadata, resourceVersion: undefined } })) {
      // A no-op update keeps the resourceVersion and sends no watch event.
      return sendJson(res, 200, previous);
    }
    this.store(route.type_, key, stored, 'MODIFIED');
    sendJson(res, 200, stored);
  }

  private mergePatchStatus(route: Route, text: string, res: http.ServerResponse): void {
    const body = this.jsonBody(text, res);
    if (!body) return;
    const key = objectKey(route.type_, route.namespace, route.name ?? '');
    const current = this.objects.get(key);
    if (!current) return sendStatus(res, 404, 'NotFound', `${route.type_.plural}.sensorlet.io "${route.name}" not found`);
    const expected = (body.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
    if (expected && expected !== current.metadata.resourceVersion) return sendStatus(res, 409, 'Conflict', 'the object has been modified');
    const updated = structuredClone(current);
    // The status subresource ignores everything but status.
    if ('status' in body) updated.status = mergePatch(current.status, body.status);
    if (JSON.stringify(updated.status) === JSON.stringify(current.status)) return sendJson(res, 200, current);
    // A merge patch that removes status.nodes leaves no entry for any apply manager to own.
    if (!(updated.status as { nodes?: unknown } | undefined)?.nodes) for (const owned of this.ownership.values()) owned.delete(key);
    this.store(route.type_, key, updated, 'MODIFIED');
    sendJson(res, 200, updated);
  }

  /** TokenReview and SubjectAccessReview: create-only, answered with the object and its status. */
  private review(pathname: string, text: string, res: http.ServerResponse): void {
    let body: Record<string, any>;
    try {
      body = JSON.parse(text);
    } catch {
      return sendStatus(res, 400, 'BadRequest', 'the body is not JSON');
    }
    const kind = pathname === TOKEN_REVIEWS ? 'TokenReview' : 'SubjectAccessReview';
    const apiVersion = pathname === TOKEN_REVIEWS ? 'authentication.k8s.io/v1' : 'authorization.k8s.io/v1';
    if (body.kind !== kind || body.apiVersion !== apiVersion) return sendStatus(res, 400, 'BadRequest', `expected ${apiVersion} ${kind}`);
    const spec = (body.spec ?? {}) as Record<string, any>;
    this.reviews.push({ kind, spec: structuredClone(spec) });
    let status: Record<string, unknown>;
    if (kind === 'TokenReview') {
      const user = typeof spec.token === 'string' ? this.tokens.get(spec.token) : undefined;
      status = user ? { authenticated: true, user } : { authenticated: false, error: 'invalid bearer token' };
    } else {
      const attributes = (spec.nonResourceAttributes ?? {}) as { path?: string; verb?: string };
      const subjects = [spec.user, ...((spec.groups as string[] | undefined) ?? [])];
      const allowed = this.nonResourceRules.some(
        (rule) =>
          subjects.includes(rule.subject) &&
          rule.verbs.some((verb) => verb === '*' || verb === attributes.verb) &&
          rule.paths.some((path) => path === attributes.path || (path.endsWith('*') && (attributes.path ?? '').startsWith(path.slice(0, -1)))),
      );
      status = allowed ? { allowed: true, reason: 'RBAC: allowed by the test rules' } : { allowed: false };
    }
    sendJson(res, 201, { apiVersion, kind, metadata: { creationTimestamp: null }, spec, status });
  }

  private list(route: Route, selector: Selector, res: http.ServerResponse): void {
    const injected = this.listFailures.shift();
    if (injected !== undefined) return sendStatus(res, injected, 'InternalError', 'injected failure');
    const scoped = withNamespace(selector, route.namespace);
    const items = [...this.objects.values()]
      .filter((object) => object.kind === route.type_.kind && matchesSelector(scoped, object))
      .map((object) => wireObject(route.type_, object, true));
    sendJson(res, 200, {
      kind: `${route.type_.kind}List`,
      apiVersion: route.type_.apiVersion,
      metadata: { resourceVersion: String(this.revision) },
      items,
    });
  }

  private watch(route: Route, selector: Selector, query: URLSearchParams, res: http.ServerResponse, caller: CallerStats): void {
    const watch: OpenWatch = {
      type_: route.type_,
      selector: withNamespace(selector, route.namespace),
      bookmarks: query.get('allowWatchBookmarks') === 'true',
      res,
      caller,
    };
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const from = query.get('resourceVersion') ?? '';
    if (from === '' || from === '0') {
      // "Any version": start with the current state as synthetic ADDED events.
      for (const object of this.objects.values()) {
        const event: StoredEvent = { rv: Number(object.metadata.resourceVersion), type: 'ADDED', type_: typeForKind(object.kind), object };
        if (matchesWatch(watch, event)) sendEvent(watch, { type: 'ADDED', object: wireObject(route.type_, object) });
      }
    } else {
      const since = Number(from);
      if (!Number.isInteger(since) || since + 1 < this.compactedBefore) {
        this.goneAnswers++;
        writeEvent(res, { type: 'ERROR', object: goneStatus() });
        res.end();
        return;
      }
      for (const event of this.history) {
        if (event.rv > since) deliver(watch, event);
      }
    }
    this.watches.add(watch);
    res.on('close', () => this.watches.delete(watch));
  }

  private patchStatus(route: Route, query: URLSearchParams, contentType: string, text: string, res: http.ServerResponse): void {
    const fieldManager = query.get('fieldManager') ?? undefined;
    const force = query.get('force') === 'true';
    const recorded: RecordedPatch = { path: `${routePath(route)}/status`, contentType, fieldManager, force, body: {}, status: 0, at: Date.now() };
    this.patches.push(recorded);
    const answer = (status: number, reason: string, message: string): void => {
      recorded.status = status;
      sendStatus(res, status, reason, message);
    };
    const injected = this.patchFailures.shift();
    if (injected !== undefined) return answer(injected, injected === 409 ? 'Conflict' : 'InternalError', 'injected failure');
    if (contentType.split(';')[0].trim() !== 'application/apply-patch+yaml') {
      return answer(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/apply-patch+yaml`);
    }
    if (!fieldManager) return answer(400, 'BadRequest', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');
    let body: Record<string, unknown>;
    try {
      body = yaml.load(text) as Record<string, unknown>;
    } catch (error) {
      return answer(400, 'BadRequest', `error decoding YAML: ${(error as Error).message}`);
    }
    recorded.body = body;
    const key = objectKey(route.type_, route.namespace, route.name ?? '');
    const current = this.objects.get(key);
    if (!current) return answer(404, 'NotFound', `${route.type_.plural}.sensorlet.io "${route.name}" not found`);
    const metadata = (body.metadata ?? {}) as { name?: string; namespace?: string };
    if (body.kind !== route.type_.kind || body.apiVersion !== route.type_.apiVersion || metadata.name !== route.name) {
      return answer(400, 'BadRequest', 'apiVersion, kind and metadata.name of the apply body must match the URL');
    }
    const applied = (((body.status ?? {}) as { nodes?: unknown }).nodes ?? []) as { name?: string }[];
    if (!Array.isArray(applied) || applied.some((entry) => typeof entry?.name !== 'string')) {
      return answer(422, 'Invalid', 'status.nodes: every entry needs the key field "name"');
    }
    const byManager = this.ownership.get(fieldManager) ?? new Map<string, Set<string>>();
    this.ownership.set(fieldManager, byManager);
    const previouslyOwned = byManager.get(key) ?? new Set<string>();
    const appliedNames = new Set(applied.map((entry) => entry.name as string));
    const existing = (((current.status ?? {}) as { nodes?: { name: string }[] }).nodes ?? []).filter(
      (entry) => !(previouslyOwned.has(entry.name) && !appliedNames.has(entry.name)),
    );
    const nodes = existing.map((entry) => applied.find((candidate) => candidate.name === entry.name) ?? entry);
    for (const entry of applied) if (!existing.some((candidate) => candidate.name === entry.name)) nodes.push(entry as { name: string });
    byManager.set(key, appliedNames);
    const updated = structuredClone(current);
    updated.status = { ...((current.status ?? {}) as object), nodes };
    this.store(route.type_, key, updated, 'MODIFIED');
    recorded.status = 200;
    sendJson(res, 200, updated);
  }
}

// ---- helpers -------------------------------------------------------------------------------

interface Route {
  type_: ResourceType;
  namespace: string | undefined;
  name: string | undefined;
  subresource: string | undefined;
}

function typeForKind(kind: unknown): ResourceType {
  const type_ = RESOURCE_TYPES.find((candidate) => candidate.kind === kind);
  if (!type_) throw new Error(`fake apiserver: unknown kind ${String(kind)}`);
  return type_;
}

function objectKey(type_: ResourceType, namespace: string | undefined, name: string): string {
  return `${type_.kind}/${namespace ?? ''}/${name}`;
}

/** `/api/v1/...` and `/apis/sensorlet.io/v1alpha1/...`, with optional `namespaces/{ns}`, name, subresource. */
function parseRoute(pathname: string): Route | undefined {
  const parts = pathname.split('/').filter(Boolean);
  let rest: string[];
  let apiVersion: string;
  if (parts[0] === 'api' && parts[1] === 'v1') {
    apiVersion = 'v1';
    rest = parts.slice(2);
  } else if (parts[0] === 'apis' && parts.length >= 3) {
    apiVersion = `${parts[1]}/${parts[2]}`;
    rest = parts.slice(3);
  } else return undefined;
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = decodeURIComponent(rest[1]);
    rest = rest.slice(2);
  }
  const type_ = RESOURCE_TYPES.find((candidate) => candidate.plural === rest[0] && candidate.apiVersion === apiVersion);
  if (!type_ || rest.length > 3) return undefined;
  if (!type_.namespaced && namespace !== undefined) return undefined;
  const name = rest[1] !== undefined ? decodeURIComponent(rest[1]) : undefined;
  if (name && type_.namespaced && namespace === undefined) return undefined;
  return { type_, namespace, name, subresource: rest[2] };
}

function routePath(route: Route): string {
  const prefix = route.type_.apiVersion === 'v1' ? '/api/v1' : `/apis/${route.type_.apiVersion}`;
  return `${prefix}${route.namespace ? `/namespaces/${route.namespace}` : ''}/${route.type_.plural}/${route.name ?? ''}`;
}

/** One requirement of a label or field selector. */
interface Requirement {
  key: string;
  operator: 'in' | 'notin' | 'exists' | '!exists';
  values: string[];
}

interface Selector {
  labels: Requirement[];
  fields: Requirement[];
}

/** Splits on commas outside parentheses (`a in (x,y),b=c`). */
function selectorTerms(text: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const char of text) {
    if (char === '(') depth++;
    if (char === ')') depth--;
    if (char === ',' && depth === 0) {
      terms.push(current.trim());
      current = '';
    } else current += char;
  }
  if (current.trim()) terms.push(current.trim());
  return terms.filter(Boolean);
}

function parseLabelSelector(text: string): Requirement[] {
  return selectorTerms(text).map((term) => {
    let match = /^([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term);
    if (match) return { key: match[1], operator: match[2] as 'in' | 'notin', values: match[3].split(',').map((value) => value.trim()).filter(Boolean) };
    match = /^([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)$/.exec(term);
    if (match) return { key: match[1], operator: match[2] === '!=' ? 'notin' : 'in', values: [match[3]] };
    if (/^![^\s!=]+$/.test(term)) return { key: term.slice(1), operator: '!exists', values: [] };
    if (/^[^\s!=()]+$/.test(term)) return { key: term, operator: 'exists', values: [] };
    throw new Error(`unable to parse requirement: ${term}`);
  });
}

function parseFieldSelector(text: string): Requirement[] {
  return selectorTerms(text).map((term) => {
    const match = /^([^\s!=]+)\s*(==|=|!=)\s*([^\s]*)$/.exec(term);
    if (!match) throw new Error(`invalid field selector: ${term}`);
    if (match[1] !== 'metadata.name' && match[1] !== 'metadata.namespace') throw new Error(`field label not supported: ${match[1]}`);
    return { key: match[1], operator: match[2] === '!=' ? 'notin' : 'in', values: [match[3]] };
  });
}

function parseSelectors(labelSelector: string | null, fieldSelector: string | null): Selector {
  return { labels: parseLabelSelector(labelSelector ?? ''), fields: parseFieldSelector(fieldSelector ?? '') };
}

/** A namespaced request path selects that namespace, like a field selector on metadata.namespace. */
function withNamespace(selector: Selector, namespace: string | undefined): Selector {
  if (!namespace) return selector;
  return { ...selector, fields: [...selector.fields, { key: 'metadata.namespace', operator: 'in', values: [namespace] }] };
}

function satisfies(requirement: Requirement, value: string | undefined): boolean {
  switch (requirement.operator) {
    case 'exists':
      return value !== undefined;
    case '!exists':
      return value === undefined;
    case 'in':
      return value !== undefined && requirement.values.includes(value);
    case 'notin':
      return value === undefined || !requirement.values.includes(value);
  }
}

function matchesSelector(selector: Selector, object: KubeObject): boolean {
  const labels = object.metadata.labels ?? {};
  const fields: Record<string, string | undefined> = { 'metadata.name': object.metadata.name, 'metadata.namespace': object.metadata.namespace };
  return selector.labels.every((requirement) => satisfies(requirement, labels[requirement.key])) && selector.fields.every((requirement) => satisfies(requirement, fields[requirement.key]));
}

function matchesWatch(watch: OpenWatch, event: StoredEvent): boolean {
  return event.type_.kind === watch.type_.kind && matchesSelector(watch.selector, event.object);
}

/**
 * Sends an event as kube-apiserver's watch cache does with a selector: a modification that makes an
 * object match arrives as ADDED, one that makes it stop matching as DELETED, others not at all.
 */
function deliver(watch: OpenWatch, event: StoredEvent): void {
  if (event.type_.kind !== watch.type_.kind) return;
  const now = matchesSelector(watch.selector, event.object);
  const before = event.type === 'MODIFIED' && event.previous !== undefined && matchesSelector(watch.selector, event.previous);
  let type: string = event.type;
  if (event.type === 'MODIFIED') {
    if (now && !before) type = 'ADDED';
    else if (!now && before) type = 'DELETED';
    else if (!now) return;
  } else if (!now) return;
  sendEvent(watch, { type, object: wireObject(event.type_, event.object) });
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return structuredClone(patch);
  const out: Record<string, unknown> = target && typeof target === 'object' && !Array.isArray(target) ? structuredClone(target as Record<string, unknown>) : {};
  for (const [key, value] of Object.entries(patch as Record<string, unknown>)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

function sendEvent(watch: OpenWatch, event: { type: string; object: unknown }): void {
  if (watch.res.writableEnded || watch.res.destroyed) return;
  watch.caller.watchEvents++;
  writeEvent(watch.res, event);
}

function wireObject(type_: ResourceType, object: KubeObject, asListItem = false): KubeObject {
  const copy = structuredClone(object);
  if (asListItem && !type_.itemsCarryKind) {
    delete copy.kind;
    delete copy.apiVersion;
  }
  return copy;
}

function goneStatus(): Record<string, unknown> {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'too old resource version',
    reason: 'Expired',
    code: 410,
  };
}

function writeEvent(res: http.ServerResponse, event: { type: string; object: unknown }): void {
  if (!res.writableEnded && !res.destroyed) res.write(`${JSON.stringify(event)}\n`);
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendStatus(res: http.ServerResponse, code: number, reason: string, message: string): void {
  sendJson(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}
