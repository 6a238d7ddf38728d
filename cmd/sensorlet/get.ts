// `sensorlet get`: a kubectl-like view of a running agent, through its admin API.
// Which kinds exist and what they are called comes from one table, KIND_NAMES (pkg/api/crds.ts),
// which also names the CRDs: a new kind is listed, accepted and shown here once it is there.
import { readFile } from 'node:fs/promises';
import yaml from 'js-yaml';
import { KIND_NAMES } from '../../pkg/api/crds.js';
import { KINDS, type Kind } from '../../pkg/api/schemas.js';

interface ListedResource {
  kind: string;
  metadata: { name: string; namespace: string; generation: number };
  spec?: Record<string, any>;
  status: {
    /** The fleet roll-up (here: of the agent's one node), as on the API server. */
    readyOfDesired?: string;
    nodes: { conditions?: { type: string; status: string; reason?: string; message?: string }[]; [fact: string]: unknown }[];
  };
}

type Column = [title: string, value: (resource: ListedResource) => unknown];

/** How often `-w` asks the agent again. */
const WATCH_INTERVAL_MS = 1000;
/** Multi-value readings in the LAST cell: a table cell, not a data export (-o json has them all). */
const LAST_CELL_CHARS = 48;

/** Every name `get` accepts for a kind, lowercase: the kind, singular, plural, short and CLI names. */
function namesOf(kind: Kind): string[] {
  const names = KIND_NAMES[kind];
  return [...new Set([kind.toLowerCase(), names.singular, names.plural, ...names.shortNames, ...(names.cliNames ?? [])])];
}

/** The kind a name on the command line means (case-insensitive), or undefined. */
export function kindFromName(name: string): Kind | undefined {
  const wanted = name.toLowerCase();
  return KINDS.find((kind) => namesOf(kind).includes(wanted));
}

/** One line per kind: `sensors (sensor, sn, sen)`, for help and for an unknown kind. */
export function describeKinds(): string {
  return KINDS.map((kind) => `${KIND_NAMES[kind].plural} (${namesOf(kind).filter((name) => name !== KIND_NAMES[kind].plural).join(', ')})`).join('\n');
}

/** A reading's value as read: decimals are clean where scaling happens, so nothing is rounded here. */
function formatLast(last: { value?: number; values?: Record<string, number> } | undefined): string {
  if (!last) return '';
  if (last.value !== undefined) return String(last.value);
  if (!last.values) return '';
  const text = Object.entries(last.values)
    .map(([name, value]) => `${name}=${value}`)
    .join(' ');
  return text.length > LAST_CELL_CHARS ? `${text.slice(0, LAST_CELL_CHARS - 1)}…` : text;
}

function formatProgress(progress: { bytes: number; total: number } | null | undefined): string {
  if (!progress || !(progress.total > 0)) return '';
  return `${Math.floor(Math.min(1, progress.bytes / progress.total) * 100)}%`;
}

/** A setpoint, a bit or a register block. */
function formatSetting(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(String).join(',')}]`;
  return value === undefined ? '' : String(value);
}

function condition(resource: ListedResource, type: string) {
  return resource.status.nodes[0]?.conditions?.find((item) => item.type === type);
}

const node = (resource: ListedResource) => resource.status.nodes[0] ?? {};

/** Columns after NAMESPACE NAME READY REASON, per kind; a kind without an entry shows only those. */
const KIND_COLUMNS: Partial<Record<Kind, Column[]>> = {
  Sensor: [
    ['DRIVER', (r) => Object.keys(r.spec?.driver ?? {})[0] ?? ''],
    ['INTERVAL', (r) => r.spec?.interval ?? ''],
    ['READINGS', (r) => node(r).readings ?? 0],
    ['LAST', (r) => formatLast(node(r).lastReading as { value?: number; values?: Record<string, number> } | undefined)],
  ],
  Sink: [
    ['TYPE', (r) => ['mqtt', 'coap', 'stdout'].find((type) => r.spec?.[type]) ?? ''],
    ['CONNECTED', (r) => condition(r, 'Connected')?.status ?? ''],
    ['QUEUED', (r) => node(r).queued ?? 0],
  ],
  Actuator: [
    ['DESIRED', (r) => formatSetting(r.spec?.desired)],
    ['OBSERVED', (r) => formatSetting(node(r).observed)],
    ['IN-SYNC', (r) => condition(r, 'InSync')?.status ?? 'Unknown'],
    ['SYNC-REASON', (r) => condition(r, 'InSync')?.reason ?? ''],
  ],
  Certificate: [
    ['TENANT', (r) => node(r).tenant ?? ''],
    ['DEVICE', (r) => node(r).device ?? ''],
    ['EXPIRES', (r) => node(r).notAfter ?? ''],
  ],
  Firmware: [
    ['VERSION', (r) => r.spec?.version ?? ''],
    ['CURRENT', (r) => node(r).currentVersion ?? ''],
    ['PHASE', (r) => node(r).phase ?? ''],
    ['PROGRESS', (r) => formatProgress(node(r).progress as { bytes: number; total: number } | null | undefined)],
  ],
};

function columnsFor(kind: string, wide: boolean): Column[] {
  const columns: Column[] = [
    ['NAMESPACE', (r) => r.metadata.namespace],
    ['NAME', (r) => r.metadata.name],
    // ready/desired nodes, as kubectl's READY column of the same resource reads.
    ['READY', (r) => r.status.readyOfDesired ?? '0/0'],
    ['REASON', (r) => condition(r, 'Ready')?.reason ?? ''],
    ...(KIND_COLUMNS[kind as Kind] ?? []),
  ];
  if (wide) columns.push(['MESSAGE', (r) => condition(r, 'Ready')?.message ?? '']);
  return columns;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_cell, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column])).join('   ').trimEnd()).join('\n');
}

/** The first token of a token file (the agent accepts any of its lines). */
async function readToken(file: string): Promise<string> {
  const token = (await readFile(file, 'utf8')).split(/\r?\n/).map((line) => line.trim()).find((line) => line.length > 0);
  if (!token) throw new Error(`the token file ${file} holds no token`);
  return token;
}

/** What `get` prints for these resources, in the output format asked for. */
export function render(items: ListedResource[], kind: Kind | undefined, name: string | undefined, output: string | undefined): string {
  if (output === 'json') return JSON.stringify(name ? items[0] : { apiVersion: 'v1', kind: 'List', items }, null, 2);
  if (output === 'yaml') return yaml.dump(name ? items[0] : { apiVersion: 'v1', kind: 'List', items }, { noRefs: true }).trimEnd();
  const kinds = kind ? [kind] : [...new Set(items.map((item) => item.kind))];
  if (kinds.length === 0) return 'No resources.';
  const blocks = kinds.map((each) => {
    const columns = columnsFor(each, output === 'wide');
    const rows = items.filter((item) => item.kind === each).map((item) => columns.map(([, value]) => String(value(item))));
    const header = columns.map(([title]) => title);
    const plural = KIND_NAMES[each as Kind]?.plural ?? `${each.toLowerCase()}s`;
    return `${kinds.length > 1 ? `${plural}\n` : ''}${rows.length ? table([header, ...rows]) : `No ${plural} found.`}`;
  });
  return blocks.join('\n\n');
}

class AgentUnreachable extends Error {}

export interface GetOptions {
  output?: string;
  tokenFile?: string;
  /** Keep asking, and print again whenever what would be printed changes (until interrupted). */
  watch?: boolean;
}

export async function getCommand(adminAddr: string, kindArg: string | undefined, name: string | undefined, options: GetOptions = {}): Promise<number> {
  const kind = kindArg === undefined ? undefined : kindFromName(kindArg);
  if (kindArg !== undefined && !kind) {
    console.error(`error: unknown kind ${JSON.stringify(kindArg)}; the kinds are:\n${describeKinds().replace(/^/gm, '  ')}`);
    return 1;
  }
  let headers: Record<string, string> = {};
  try {
    if (options.tokenFile) headers = { authorization: `Bearer ${await readToken(options.tokenFile)}` };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    console.error(`error: --token-file: ${code ? `${options.tokenFile} cannot be read (${code})` : (error as Error).message}`);
    return 1;
  }
  const list = async (): Promise<ListedResource[]> => {
    let response: Response;
    try {
      response = await fetch(`http://${adminAddr}/api/v1/resources`, { headers });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new AgentUnreachable(`cannot reach the agent's admin API at ${adminAddr}: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
    }
    if (response.status === 401 || response.status === 403) {
      const reason = (await response.text()).trim();
      throw new Error(`the agent's admin API at ${adminAddr} refused the request (${response.status}: ${reason})${options.tokenFile ? '' : '; give --token-file FILE'}`);
    }
    if (!response.ok) throw new AgentUnreachable(`the agent's admin API at ${adminAddr} answered HTTP ${response.status}`);
    const body = (await response.json()) as { items: ListedResource[] };
    return body.items.filter((item) => (!kind || item.kind === kind) && (!name || item.metadata.name === name));
  };

  let items: ListedResource[];
  try {
    items = await list();
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    return 1;
  }
  if (name && items.length === 0) {
    console.error(`error: ${kind ? KIND_NAMES[kind].singular : 'resource'} ${name} not found`);
    return 1;
  }
  let shown = render(items, kind, name, options.output);
  console.log(shown);
  if (!options.watch) return 0;

  // -w: ask again every second; print only when the answer changed. Ctrl-C ends it with status 0.
  const clear = process.stdout.isTTY ? '\x1b[H\x1b[2J' : '';
  let outage: string | undefined;
  return new Promise<number>((resolve) => {
    const stop = () => {
      clearTimeout(timer);
      resolve(0);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    let timer: NodeJS.Timeout;
    const tick = async () => {
      try {
        const next = render(await list(), kind, name, options.output);
        if (outage !== undefined) console.error(`the agent at ${adminAddr} answers again`);
        outage = undefined;
        if (next !== shown) {
          shown = next;
          process.stdout.write(`${clear || '\n'}${next}\n`);
        }
      } catch (error) {
        const message = (error as Error).message;
        // An agent restarting is worth one line, not one per second.
        if (message !== outage) console.error(`error: ${message}; still watching`);
        outage = message;
      }
      timer = setTimeout(() => void tick(), WATCH_INTERVAL_MS);
    };
    timer = setTimeout(() => void tick(), WATCH_INTERVAL_MS);
  });
}
