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
}

const RESOURCE_TYPES: ResourceType[] = [
  { kind: 'Sensor', plural: 'sensors', apiVersion: 'sensorlet.io/v1alpha1', namespaced: true, itemsCarryKind: true },
  { kind: 'Sink', plural: 'sinks', apiVersion: 'sensorlet.io/v1alpha1', namespaced: true, itemsCarryKind: true },
  { kind: 'Certificate', plural: 'certificates', apiVersion: 'sensorlet.io/v1alpha1', namespaced: true, itemsCarryKind: true },
  { kind: 'Firmware', plural: 'firmwares', apiVersion: 'sensorlet.io/v1alpha1', namespaced: true, itemsCarryKind: true },
  { kind: 'Actuator', plural: 'actuators', apiVersion: 'sensorlet.io/v1alpha1', namespaced: true, itemsCarryKind: true },
  { kind: 'Node', plural: 'nodes', apiVersion: 'v1', namespaced: false, itemsCarryKind: false },
  { kind: 'Secret', plural: 'secrets', apiVersion: 'v1', namespaced: true, itemsCarryKind: false },
];

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
}

interface OpenWatch {
  type_: ResourceType;
  namespace: string | undefined;
  nameSelector: string | undefined;
  bookmarks: boolean;
  res: http.ServerResponse;
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

  /** Writes a kubeconfig for this server (plain http needs insecure-skip-tls-verify in client-node). */
  writeKubeconfig(dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-kube-')), namespace?: string): string {
    const file = path.join(dir, 'kubeconfig.yaml');
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: this.url, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'agent', user: { token: 'fake-token' } }],
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
      // The status subresource: a write of the main resource does not change status.
      if (type_.itemsCarryKind) stored.status = previous.status;
      const specChanged = JSON.stringify(previous.spec) !== JSON.stringify(stored.spec);
      const generation = Number(previous.metadata.generation ?? 1);
      stored.metadata.generation = type_.itemsCarryKind ? (specChanged ? generation + 1 : generation) : undefined;
    } else {
      stored.metadata.uid = `uid-${++this.uidCounter}`;
      stored.metadata.creationTimestamp = new Date().toISOString();
      if (type_.itemsCarryKind) stored.metadata.generation = 1;
    }
    if (stored.metadata.generation === undefined) delete stored.metadata.generation;
    this.store(type_, key, stored, previous ? 'MODIFIED' : 'ADDED');
    return structuredClone(stored);
  }

  delete(kind: string, namespace: string | undefined, name: string): boolean {
    const type_ = typeForKind(kind);
    const key = objectKey(type_, type_.namespaced ? (namespace ?? 'default') : undefined, name);
    const previous = this.objects.get(key);
    if (!previous) return false;
    this.objects.delete(key);
    const deleted = structuredClone(previous);
    deleted.metadata.resourceVersion = String(++this.revision);
    this.record({ rv: this.revision, type: 'DELETED', type_, object: deleted });
    for (const owned of this.ownership.values()) owned.delete(key);
    return true;
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
    this.objects.set(key, object);
    this.record({ rv: this.revision, type, type_, object: structuredClone(object) });
  }

  private record(event: StoredEvent): void {
    this.history.push(event);
    if (this.history.length > MAX_HISTORY) {
      const dropped = this.history.splice(0, this.history.length - MAX_HISTORY);
      this.compactedBefore = dropped[dropped.length - 1].rv + 1;
    }
    for (const watch of this.watches) {
      if (matchesWatch(watch, event)) writeEvent(watch.res, { type: event.type, object: wireObject(event.type_, event.object) });
    }
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.requests.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    const url = new URL(req.url ?? '/', this.url);
    if (req.method === 'POST' && (url.pathname === TOKEN_REVIEWS || url.pathname === SUBJECT_ACCESS_REVIEWS)) {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => this.review(url.pathname, Buffer.concat(chunks).toString('utf8'), res));
      return;
    }
    const route = parseRoute(url.pathname);
    if (!route || this.missingKinds.has(route.type_.plural)) return sendStatus(res, 404, 'NotFound', `the server could not find the requested resource (${url.pathname})`);
    const query = url.searchParams;
    if (req.method === 'GET' && !route.name) {
      const watching = query.get('watch') === 'true' || query.get('watch') === '1';
      return watching ? this.watch(route, query, res) : this.list(route, query, res);
    }
    if (req.method === 'GET' && route.name && !route.subresource) {
      const object = this.objects.get(objectKey(route.type_, route.namespace, route.name));
      if (!object) return sendStatus(res, 404, 'NotFound', `${route.type_.plural} "${route.name}" not found`);
      return sendJson(res, 200, object);
    }
    if (req.method === 'PATCH' && route.name && route.subresource === 'status') {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => this.patchStatus(route, query, req.headers['content-type'] ?? '', Buffer.concat(chunks).toString('utf8'), res));
      return;
    }
    sendStatus(res, 405, 'MethodNotAllowed', `${req.method} is not supported by the fake API server on ${url.pathname}`);
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

  private selected(route: Route, query: URLSearchParams): { namespace: string | undefined; name: string | undefined } {
    const selector = parseFieldSelector(query.get('fieldSelector'));
    return { namespace: route.namespace ?? selector.namespace, name: selector.name };
  }

  private list(route: Route, query: URLSearchParams, res: http.ServerResponse): void {
    const injected = this.listFailures.shift();
    if (injected !== undefined) return sendStatus(res, injected, 'InternalError', 'injected failure');
    const { namespace, name } = this.selected(route, query);
    const items = [...this.objects.values()]
      .filter((object) => object.kind === route.type_.kind)
      .filter((object) => !namespace || object.metadata.namespace === namespace)
      .filter((object) => !name || object.metadata.name === name)
      .map((object) => wireObject(route.type_, object, true));
    sendJson(res, 200, {
      kind: `${route.type_.kind}List`,
      apiVersion: route.type_.apiVersion,
      metadata: { resourceVersion: String(this.revision) },
      items,
    });
  }

  private watch(route: Route, query: URLSearchParams, res: http.ServerResponse): void {
    const { namespace, name } = this.selected(route, query);
    const watch: OpenWatch = {
      type_: route.type_,
      namespace,
      nameSelector: name,
      bookmarks: query.get('allowWatchBookmarks') === 'true',
      res,
    };
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    const from = query.get('resourceVersion') ?? '';
    if (from === '' || from === '0') {
      // "Any version": start with the current state as synthetic ADDED events.
      for (const object of this.objects.values()) {
        const event: StoredEvent = { rv: Number(object.metadata.resourceVersion), type: 'ADDED', type_: typeForKind(object.kind), object };
        if (matchesWatch(watch, event)) writeEvent(res, { type: 'ADDED', object: wireObject(route.type_, object) });
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
        if (event.rv > since && matchesWatch(watch, event)) writeEvent(res, { type: event.type, object: wireObject(route.type_, event.object) });
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

function parseFieldSelector(selector: string | null): { name?: string; namespace?: string } {
  const out: { name?: string; namespace?: string } = {};
  for (const term of (selector ?? '').split(',').filter(Boolean)) {
    const [field, value] = term.split('=');
    if (field === 'metadata.name') out.name = value;
    else if (field === 'metadata.namespace') out.namespace = value;
    else throw new Error(`fake apiserver: unsupported field selector ${term}`);
  }
  return out;
}

function matchesWatch(watch: OpenWatch, event: StoredEvent): boolean {
  return (
    event.type_.kind === watch.type_.kind &&
    (!watch.namespace || event.object.metadata.namespace === watch.namespace) &&
    (!watch.nameSelector || event.object.metadata.name === watch.nameSelector)
  );
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
