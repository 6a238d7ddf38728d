// The console page (runs in the browser; bundled with uPlot into dist/console/console.js).
//
// Data arrives from GET /console/events as Server-Sent Events, read with fetch() rather than
// EventSource: EventSource cannot send an Authorization header, and the admin API takes its token
// only there (no cookie: a cookie would go with any request another site makes the browser
// send, POST /reload included). When the agent asks for a token (401), the page asks the person
// for it and keeps it in this tab's sessionStorage: never in the address (logs, history, Referer).
//
// Every string from the agent (names, reasons, messages: written by manifest authors or read from
// devices) goes into the page as text (textContent, setAttribute), never as HTML.
import uPlot from 'uplot';

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  since?: string;
}

interface View {
  key: string;
  kind: string;
  namespace: string;
  name: string;
  conditions: Condition[];
  [field: string]: any;
}

interface Series {
  t: number[];
  v: number[];
  field?: string;
}

interface Overview {
  device: string;
  node: string;
  version: string;
  slot?: string;
  startedAt: string;
  ready: boolean;
}

interface OrphanError {
  file?: string;
  line?: number;
  errors: { path: string; message: string; reason: string }[];
}

interface Snapshot {
  now: number;
  agent: Overview;
  resources: View[];
  series: Record<string, Series>;
  errors: OrphanError[];
}

interface Update {
  now: number;
  agent: Overview;
  changed?: View[];
  removed?: string[];
  points?: Record<string, Series>;
  errors?: OrphanError[];
}

const TOKEN_KEY = 'sensorlet-admin-token';
/** Points kept per Sensor, as the agent keeps them: ten minutes at one a second. */
const MAX_POINTS = 600;
const WINDOW_SECONDS = 600;
/** No event (updates, keep-alives every 15 s) for this long: the stream is dead, start again. */
const STALE_MS = 40_000;
const RECONNECT_MS = 2000;
const KINDS = ['Sensor', 'Sink', 'Firmware', 'Certificate'];

const $ = <T extends HTMLElement = HTMLElement>(selector: string, root: ParentNode = document): T => root.querySelector(selector) as T;

/** An element with text and attributes; children appended. Data only ever lands in textContent or attributes. */
function el(tag: string, attributes: Record<string, string | undefined> = {}, ...children: (Node | string | undefined)[]): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) if (value !== undefined) element.setAttribute(name, value);
  for (const child of children) if (child !== undefined) element.append(child);
  return element;
}

// ---- formatting ----

/** A value without float noise (3.3000000000000003 → 3.3). */
function formatNumber(value: number | undefined): string {
  if (value === undefined || value === null) return '–';
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toPrecision(6)));
}

function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  if (days > 0) return `${days}d ${hours}h`;
  if (hours > 0) return `${hours}h ${minutes}m`;
  if (minutes > 0) return `${minutes}m ${seconds % 60}s`;
  return `${seconds}s`;
}

function formatBytes(bytes: number | undefined): string {
  if (bytes === undefined) return '';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

const formatRate = (rate: number | undefined) => (rate === undefined ? '–' : `${formatNumber(Math.round(rate * 100) / 100)}/s`);

// ---- state ----

/** The agent's clock minus ours, so that ages and time left use the agent's idea of now. */
let clockOffset = 0;
const agentNow = () => Date.now() + clockOffset;
let overview: Overview | undefined;
const views = new Map<string, View>();
const rows = new Map<string, HTMLTableRowElement>();
const series = new Map<string, Series>();
const charts = new Map<string, uPlot>();

function applySnapshot(snapshot: Snapshot): void {
  clockOffset = snapshot.now - Date.now();
  overview = snapshot.agent;
  for (const key of [...views.keys()]) removeResource(key);
  series.clear();
  for (const [key, points] of Object.entries(snapshot.series)) series.set(key, { t: [...points.t], v: [...points.v], field: points.field });
  for (const view of snapshot.resources) upsertResource(view);
  renderErrors(snapshot.errors);
  renderOverview();
  renderCounts();
}

function applyUpdate(update: Update): void {
  clockOffset = update.now - Date.now();
  overview = update.agent;
  for (const key of update.removed ?? []) removeResource(key);
  for (const [key, points] of Object.entries(update.points ?? {})) appendPoints(key, points);
  for (const view of update.changed ?? []) upsertResource(view);
  if (update.errors) renderErrors(update.errors);
  renderOverview();
  renderCounts();
}

/** Adds points newer than what the page has (an update may repeat some of its snapshot's). */
function appendPoints(key: string, points: Series): void {
  let current = series.get(key);
  if (!current) {
    current = { t: [], v: [] };
    series.set(key, current);
  }
  if (points.field !== undefined) current.field = points.field;
  const last = current.t.length ? current.t[current.t.length - 1] : -Infinity;
  for (let i = 0; i < points.t.length; i++) {
    if (points.t[i] > last) {
      current.t.push(points.t[i]);
      current.v.push(points.v[i]);
    }
  }
  const oldest = Math.floor(agentNow() / 1000) - WINDOW_SECONDS;
  let drop = 0;
  while (drop < current.t.length && (current.t.length - drop > MAX_POINTS || current.t[drop] < oldest)) drop++;
  if (drop) {
    current.t.splice(0, drop);
    current.v.splice(0, drop);
  }
  charts.get(key)?.setData([current.t, current.v]);
}

function sectionOf(kind: string): HTMLElement {
  return $(KINDS.includes(kind) ? `#kind-${kind}` : '#kind-Other');
}

function upsertResource(view: View): void {
  views.set(view.key, view);
  let row = rows.get(view.key);
  if (!row) {
    row = el('tr', { 'data-key': view.key, 'data-kind': view.kind }) as HTMLTableRowElement;
    rows.set(view.key, row);
    const body = $('tbody', sectionOf(view.kind));
    // Kept in namespace/name order.
    const after = [...body.children].find((other) => (other.getAttribute('data-key') ?? '') > view.key);
    body.insertBefore(row, after ?? null);
  }
  renderRow(row, view);
}

function removeResource(key: string): void {
  views.delete(key);
  rows.get(key)?.remove();
  rows.delete(key);
  charts.get(key)?.destroy();
  charts.delete(key);
  series.delete(key);
}

// ---- rendering ----

function nameCell(view: View): HTMLElement {
  return el('td', {}, el('div', { class: 'name', 'data-field': 'name' }, view.name), el('div', { class: 'ns' }, view.namespace));
}

function condition(view: View, type: string): Condition | undefined {
  return view.conditions.find((each) => each.type === type);
}

function readyCell(view: View): HTMLElement {
  const ready = condition(view, 'Ready');
  return el(
    'td',
    {},
    el('span', { class: 'status', 'data-field': 'ready', 'data-status': ready?.status ?? 'Unknown' }, ready ? (ready.status === 'True' ? 'Ready' : ready.status === 'False' ? 'Not ready' : 'Unknown') : '–'),
    ready?.reason ? el('span', { class: 'reason', 'data-field': 'reason' }, ready.reason) : undefined,
  );
}

/** Conditions whose True is the good news; for the others (Degraded, BufferFull...) True is the warning. */
const POSITIVE_CONDITIONS = new Set(['Ready', 'Connected', 'Routed']);

function conditionClass(condition: Condition): string {
  if (condition.status === 'Unknown') return 'cond-Unknown';
  if (POSITIVE_CONDITIONS.has(condition.type)) return `cond-${condition.status}`;
  return condition.status === 'True' ? 'cond-Unknown' : 'muted';
}

/** Every condition, with its message. */
function conditionsCell(view: View): HTMLElement {
  const list = el('ul', { class: 'conditions', 'data-field': 'conditions' });
  for (const each of view.conditions) {
    const item = el('li', { 'data-type': each.type }, el('span', { class: conditionClass(each) }, `${each.type}=${each.status}`), each.reason ? ` ${each.reason}` : '');
    if (each.message) item.append(el('div', { class: 'message' }, each.message));
    if (each.since) item.setAttribute('title', `since ${each.since}`);
    list.append(item);
  }
  return el('td', {}, list);
}

function renderRow(row: HTMLTableRowElement, view: View): void {
  const cells: HTMLElement[] = [nameCell(view), readyCell(view)];
  switch (view.kind) {
    case 'Sensor':
      cells.push(...sensorCells(view));
      break;
    case 'Sink':
      cells.push(...sinkCells(view));
      break;
    case 'Firmware':
      cells.push(...firmwareCells(view));
      break;
    case 'Certificate':
      cells.push(...certificateCells(view));
      break;
    default:
      cells.push(el('td', {}, view.kind));
  }
  cells.push(conditionsCell(view));
  // The sparkline's cell (and its canvas) survives updates; every other cell is rebuilt.
  const spark = view.kind === 'Sensor' ? row.querySelector<HTMLElement>('td.spark-cell') ?? el('td', { class: 'spark-cell' }) : undefined;
  if (spark) cells.splice(5, 0, spark);
  row.replaceChildren(...cells);
  if (spark) renderSparkline(view, spark);
}

function sensorCells(view: View): HTMLElement[] {
  const last = view.lastReading;
  let value = '–';
  if (last?.value !== undefined) value = `${formatNumber(last.value)}${view.unit ? ` ${view.unit}` : ''}`;
  else if (last?.values) value = Object.entries(last.values as Record<string, number>).map(([name, each]) => `${name}=${formatNumber(each)}`).join(' ');
  return [
    el('td', {}, view.driver ?? '–', el('div', { class: 'ns' }, view.interval ? `every ${view.interval}` : '')),
    el('td', { class: 'num' }, el('span', { 'data-field': 'value' }, value), el('div', { class: 'ns' }, `${formatNumber(view.readings ?? 0)} readings${view.errors ? `, ${view.errors} errors` : ''}`)),
    el('td', { class: 'num', 'data-field': 'rate' }, formatRate(view.rate)),
  ];
}

function renderSparkline(view: View, cell: HTMLElement): void {
  if (view.historyLimited) {
    charts.get(view.key)?.destroy();
    charts.delete(view.key);
    cell.replaceChildren(el('span', { class: 'muted' }, 'no history (too many Sensors)'));
    return;
  }
  if (charts.has(view.key)) return;
  const points = series.get(view.key) ?? { t: [], v: [] };
  series.set(view.key, points);
  const holder = el('div', { class: 'spark', 'data-field': 'sparkline' });
  cell.replaceChildren(holder);
  const chart = new uPlot(
    {
      width: 160,
      height: 36,
      pxAlign: false,
      cursor: { show: false },
      legend: { show: false },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      scales: { x: { time: false }, y: { auto: true } },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: '#0969da', width: 1.5, points: { show: false } }],
    },
    [points.t, points.v],
    holder,
  );
  charts.set(view.key, chart);
}

function sinkCells(view: View): HTMLElement[] {
  const connected = condition(view, 'Connected');
  const state = view.connected === true ? 'Connected' : view.connected === false ? 'Disconnected' : 'Unknown';
  const dropped = Object.entries((view.dropped ?? {}) as Record<string, number>).filter(([, count]) => count > 0);
  const rejected = Object.entries((view.rejected ?? {}) as Record<string, number>).filter(([, count]) => count > 0);
  const drops = [...dropped, ...rejected.map(([code, count]) => [`rejected ${code}`, count] as const)];
  return [
    el(
      'td',
      {},
      el('span', { class: view.connected ? 'good' : 'bad', 'data-field': 'connection' }, state),
      connected?.status === 'False' && connected.reason ? el('span', { class: 'reason', 'data-field': 'connection-reason' }, connected.reason) : undefined,
      el('div', { class: 'ns' }, [view.protocol, view.url].filter(Boolean).join(' ')),
    ),
    el('td', { class: 'num' }, el('span', { 'data-field': 'queued' }, formatNumber(view.queued ?? 0)), el('div', { class: 'ns' }, formatBytes(view.queuedBytes))),
    el('td', { class: 'num', 'data-field': 'oldest', 'data-since': view.oldestQueued ?? undefined }, ageText(view.oldestQueued)),
    el('td', { class: 'num', 'data-field': 'delivered' }, formatRate(view.deliveryRate)),
    el('td', { 'data-field': 'dropped' }, drops.length ? el('ul', { class: 'conditions' }, ...drops.map(([reason, count]) => el('li', {}, `${reason}: ${formatNumber(count)}`))) : el('span', { class: 'muted' }, 'none')),
  ];
}

function ageText(since: string | null | undefined): string {
  if (!since) return '–';
  const at = Date.parse(since);
  return Number.isFinite(at) ? formatDuration(agentNow() - at) : '–';
}

function firmwareCells(view: View): HTMLElement[] {
  const progress = view.progress as { bytes?: number; total?: number } | undefined;
  const progressCell = el('td', { 'data-field': 'progress' });
  if (progress?.total) {
    const bar = el('progress', { max: String(progress.total), value: String(Math.min(progress.bytes ?? 0, progress.total)) });
    progressCell.append(bar, el('div', { class: 'ns' }, `${formatBytes(progress.bytes)} of ${formatBytes(progress.total)} (${Math.floor(((progress.bytes ?? 0) / progress.total) * 100)}%)`));
  } else progressCell.append(el('span', { class: 'muted' }, '–'));
  const error = view.lastError as { reason?: string; message?: string } | undefined;
  return [
    el('td', {}, el('span', { 'data-field': 'phase' }, view.phase ?? '–'), error ? el('div', { class: 'reason bad' }, [error.reason, error.message].filter(Boolean).join(': ')) : undefined),
    el('td', {}, `${view.currentVersion ?? '–'} → ${view.targetVersion ?? '–'}`, el('div', { class: 'ns' }, view.target ?? '')),
    progressCell,
  ];
}

function certificateCells(view: View): HTMLElement[] {
  const identity = [view.tenant ? `tenant ${view.tenant}` : undefined, view.device ? `device ${view.device}` : undefined].filter(Boolean).join(', ');
  return [
    el('td', {}, identity || '–', el('div', { class: 'ns' }, view.subject ?? '')),
    el('td', { class: 'num' }, view.notAfter ?? '–'),
    el('td', { class: 'num', 'data-field': 'time-left', 'data-not-after': view.notAfter }, timeLeft(view.notAfter)),
  ];
}

function timeLeft(notAfter: string | undefined): string {
  if (!notAfter) return '–';
  const at = Date.parse(notAfter);
  if (!Number.isFinite(at)) return '–';
  const left = at - agentNow();
  return left > 0 ? formatDuration(left) : `expired ${formatDuration(-left)} ago`;
}

function renderOverview(): void {
  if (!overview) return;
  const agent = $('#agent');
  $('[data-field="device"]', agent).textContent = overview.device;
  $('[data-field="node"]', agent).textContent = overview.node;
  $('[data-field="build"]', agent).textContent = `${overview.version}${overview.slot ? ` (slot ${overview.slot})` : ''}`;
  const ready = $('[data-field="ready"]', agent);
  ready.textContent = overview.ready ? 'yes' : 'not yet';
  ready.className = overview.ready ? 'good' : 'bad';
  renderClock();
}

/** What moves with time alone: uptime, queue ages, certificates' time left. */
function renderClock(): void {
  if (overview) $('#agent [data-field="uptime"]').textContent = formatDuration(agentNow() - Date.parse(overview.startedAt));
  for (const cell of document.querySelectorAll<HTMLElement>('[data-field="oldest"]')) cell.textContent = ageText(cell.getAttribute('data-since'));
  for (const cell of document.querySelectorAll<HTMLElement>('[data-field="time-left"]')) cell.textContent = timeLeft(cell.getAttribute('data-not-after') ?? undefined);
}

function renderCounts(): void {
  const counts = new Map<string, number>();
  for (const view of views.values()) {
    const kind = KINDS.includes(view.kind) ? view.kind : 'Other';
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  for (const kind of [...KINDS, 'Other']) {
    const section = $(`#kind-${kind}`);
    section.hidden = !counts.get(kind);
    $('.count', section).textContent = `(${counts.get(kind) ?? 0})`;
  }
  $('#empty').hidden = views.size > 0;
}

function renderErrors(errors: OrphanError[]): void {
  const list = $('#error-list');
  list.replaceChildren(
    ...errors.flatMap((orphan) =>
      orphan.errors.map((error) =>
        el('li', { 'data-field': 'manifest-error' }, el('strong', {}, `${orphan.file ?? '?'}${orphan.line ? `:${orphan.line}` : ''}`), ` ${error.reason}: ${error.path ? `${error.path}: ` : ''}${error.message}`),
      ),
    ),
  );
  $('#errors').hidden = errors.length === 0;
}

function setLink(state: 'connecting' | 'live' | 'down' | 'denied', text: string): void {
  const link = $('#link');
  link.setAttribute('data-state', state);
  link.textContent = text;
}

// ---- the stream ----

function showLogin(message: string): void {
  setLink('denied', 'needs a token');
  $('#login-message').textContent = message;
  $('#login').hidden = false;
  $<HTMLInputElement>('#token').focus();
}

/** Reads one stream until it ends; returns whether to try again. */
async function stream(): Promise<boolean> {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const abort = new AbortController();
  let watchdog = setTimeout(() => abort.abort(), STALE_MS);
  try {
    const response = await fetch('/console/events', { headers: token ? { authorization: `Bearer ${token}` } : {}, cache: 'no-store', signal: abort.signal });
    if (response.status === 401 || response.status === 403) {
      if (token) sessionStorage.removeItem(TOKEN_KEY);
      showLogin(token ? 'The token was not accepted. Admin token:' : "This agent's admin API needs a token.");
      return false;
    }
    if (!response.ok || !response.body) {
      setLink('down', `agent answered ${response.status}; retrying…`);
      return true;
    }
    $('#login').hidden = true;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      clearTimeout(watchdog);
      watchdog = setTimeout(() => abort.abort(), STALE_MS);
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        handleEvent(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
    setLink('down', 'agent closed the stream; reconnecting…');
  } catch {
    setLink('down', 'agent unreachable; reconnecting…');
  } finally {
    clearTimeout(watchdog);
  }
  return true;
}

/** One Server-Sent Event: `event:` and `data:` lines; comments (keep-alives) start with a colon. */
function handleEvent(block: string): void {
  let name = 'message';
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) name = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
  }
  if (data.length === 0) return;
  const payload = JSON.parse(data.join('\n'));
  if (name === 'snapshot') {
    applySnapshot(payload as Snapshot);
    setLink('live', 'live');
  } else if (name === 'update') applyUpdate(payload as Update);
}

async function run(): Promise<void> {
  while (await stream()) await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
}

function start(): void {
  $<HTMLFormElement>('#login').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = $<HTMLInputElement>('#token');
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = '';
    $('#login').hidden = true;
    setLink('connecting', 'connecting…');
    void run();
  });
  setInterval(renderClock, 1000);
  void run();
}

start();
