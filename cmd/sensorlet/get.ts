// `sensorlet get`: a kubectl-like view of a running agent, through its admin API.
import { readFile } from 'node:fs/promises';
import yaml from 'js-yaml';

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

const KIND_ALIASES: Record<string, string> = {
  sensor: 'Sensor', sensors: 'Sensor', sn: 'Sensor',
  sink: 'Sink', sinks: 'Sink', sk: 'Sink',
  certificate: 'Certificate', certificates: 'Certificate', cert: 'Certificate', slcert: 'Certificate',
};

/** Six significant digits: a table cell, not a data export (-o json has the full value). */
function formatValue(value: number | undefined): string {
  return value === undefined ? '' : String(Number(value.toPrecision(6)));
}

function condition(resource: ListedResource, type: string) {
  return resource.status.nodes[0]?.conditions?.find((item) => item.type === type);
}

function columnsFor(kind: string, wide: boolean): [string, (resource: ListedResource) => unknown][] {
  const node = (resource: ListedResource) => resource.status.nodes[0] ?? {};
  const common: [string, (resource: ListedResource) => unknown][] = [
    ['NAMESPACE', (r) => r.metadata.namespace],
    ['NAME', (r) => r.metadata.name],
    // ready/desired nodes, as kubectl's READY column of the same resource reads.
    ['READY', (r) => r.status.readyOfDesired ?? '0/0'],
    ['REASON', (r) => condition(r, 'Ready')?.reason ?? ''],
  ];
  const specific: Record<string, [string, (resource: ListedResource) => unknown][]> = {
    Sensor: [
      ['DRIVER', (r) => Object.keys(r.spec?.driver ?? {})[0] ?? ''],
      ['INTERVAL', (r) => r.spec?.interval ?? ''],
      ['READINGS', (r) => node(r).readings ?? 0],
      ['LAST', (r) => formatValue((node(r).lastReading as { value?: number } | undefined)?.value)],
    ],
    Sink: [
      ['TYPE', (r) => ['mqtt', 'coap', 'stdout'].find((type) => r.spec?.[type]) ?? ''],
      ['CONNECTED', (r) => condition(r, 'Connected')?.status ?? ''],
      ['QUEUED', (r) => node(r).queued ?? 0],
    ],
    Certificate: [
      ['TENANT', (r) => node(r).tenant ?? ''],
      ['DEVICE', (r) => node(r).device ?? ''],
      ['EXPIRES', (r) => node(r).notAfter ?? ''],
    ],
  };
  const columns = [...common, ...(specific[kind] ?? [])];
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

export async function getCommand(
  adminAddr: string,
  kindArg: string | undefined,
  name: string | undefined,
  output: string | undefined,
  tokenFile?: string,
): Promise<number> {
  const kind = kindArg ? KIND_ALIASES[kindArg.toLowerCase()] ?? kindArg : undefined;
  let list: { items: ListedResource[]; errors: unknown[] };
  let headers: Record<string, string> = {};
  try {
    if (tokenFile) headers = { authorization: `Bearer ${await readToken(tokenFile)}` };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    console.error(`error: --token-file: ${code ? `${tokenFile} cannot be read (${code})` : (error as Error).message}`);
    return 1;
  }
  try {
    const response = await fetch(`http://${adminAddr}/api/v1/resources`, { headers });
    if (response.status === 401 || response.status === 403) {
      const reason = (await response.text()).trim();
      console.error(`error: the agent's admin API at ${adminAddr} refused the request (${response.status}: ${reason})${tokenFile ? '' : '; give --token-file FILE'}`);
      return 1;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    list = (await response.json()) as typeof list;
  } catch (error) {
    console.error(`error: cannot reach the agent's admin API at ${adminAddr}: ${(error as Error).message}`);
    return 1;
  }
  const items = list.items.filter((item) => (!kind || item.kind === kind) && (!name || item.metadata.name === name));
  if (name && items.length === 0) {
    console.error(`error: ${kind ?? 'resource'} ${name} not found`);
    return 1;
  }
  if (output === 'json') console.log(JSON.stringify(name ? items[0] : { apiVersion: 'v1', kind: 'List', items }, null, 2));
  else if (output === 'yaml') console.log(yaml.dump(name ? items[0] : { apiVersion: 'v1', kind: 'List', items }, { noRefs: true }));
  else {
    const kinds = kind ? [kind] : [...new Set(items.map((item) => item.kind))];
    const blocks = kinds.map((each) => {
      const columns = columnsFor(each, output === 'wide');
      const rows = items.filter((item) => item.kind === each).map((item) => columns.map(([, value]) => String(value(item))));
      const header = columns.map(([title]) => title);
      return `${kinds.length > 1 ? `${each}s\n` : ''}${rows.length ? table([header, ...rows]) : `No ${each} resources.`}`;
    });
    console.log(blocks.join('\n\n'));
  }
  return 0;
}
