// What a user sees first, through the real CLI against one running agent: `sensorlet get` with
// every name of every kind, its columns (a Sink READY only while connected, LAST as published,
// clean scaled decimals, Firmware VERSION/PHASE/PROGRESS and a stalled download that says why),
// `get -w`, an unknown kind; /metrics by Prometheus conventions; 405 on a wrong method; one log
// line per reload.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess, CLI } from '../support/agent.js';
import { freePort, waitFor } from '../support/ports.js';
import { signatureYaml, signedArtifact, trustKey } from '../../pkg/ota/testing/artifacts.js';
import { KIND_NAMES } from '../../pkg/api/crds.js';
import { KINDS } from '../../pkg/api/schemas.js';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-get-'));
const manifests = path.join(dir, 'manifests');
const data = path.join(dir, 'data');
const trustDir = path.join(dir, 'trust');
let agent: AgentProcess;
let closedPort: number;

const artifact = signedArtifact(4096);
const intent = { version: '2.0.0', target: 'command' as const, install: { command: ['/bin/true', '{file}'] as [string, ...string[]] } };

before(async () => {
  mkdirSync(manifests);
  mkdirSync(data);
  trustKey(trustDir, 'release', artifact.key);
  // Nothing listens here: the Sink and the Firmware download both meet a refused connection.
  closedPort = await freePort();
  writeFileSync(path.join(data, 'raw'), 'T=33\n');
  writeFileSync(path.join(data, 'pair'), 'a=1 b=-126\n');
  const sensor = (name: string, namespace: string, driver: string) =>
    `apiVersion: sensorlet.io/v1alpha1\nkind: Sensor\nmetadata: { name: ${name}, namespace: ${namespace} }\nspec:\n  driver: ${driver}\n  interval: 200ms\n`;
  writeFileSync(
    path.join(manifests, 'sensors.yaml'),
    [
      // 33 * 0.1 is 3.3000000000000003 in binary floating point: published and shown as 3.3.
      sensor('scaled', 'default', `{ file: { path: ${path.join(data, 'raw')}, pattern: "T=(?<value>-?[0-9]+)", scale: 0.1 } }`),
      sensor('pair', 'default', `{ file: { path: ${path.join(data, 'pair')}, pattern: "a=(?<a>-?[0-9]+) b=(?<b>-?[0-9]+)", scale: 0.1 } }`),
      sensor('big', 'default', '{ simulated: { waveform: constant, min: 123456789, max: 123456789 } }'),
      // The same name in another namespace: another series, not added up.
      sensor('big', 'other', '{ simulated: { waveform: constant, min: 5 } }'),
    ].join('---\n'),
  );
  writeFileSync(
    path.join(manifests, 'sinks.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: console }
spec:
  selector: {}
  stdout: {}
  batch: { maxDelay: 50ms }
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: uplink }
spec:
  selector: {}
  mqtt: { url: "mqtt://127.0.0.1:${closedPort}" }
`,
  );
  writeFileSync(
    path.join(manifests, 'firmware.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Firmware
metadata: { name: modem }
spec:
  version: "2.0.0"
  target: command
  artifact:
    url: http://127.0.0.1:${closedPort}/modem.bin
    sha256: "${artifact.sha256}"
    size: ${artifact.size}
    signature: ${signatureYaml(artifact.sign(intent))}
  install: { command: ${JSON.stringify(intent.install.command)} }
`,
  );
  agent = await AgentProcess.start({
    manifests,
    extraArgs: ['--file-allow-prefix', data, '--firmware-trust-dir', trustDir, '--allow-firmware-commands'],
  });
  await agent.waitForCondition('Sensor', 'scaled', 'Ready', 'True');
  await agent.waitForCondition('Sensor', 'pair', 'Ready', 'True');
});

after(async () => {
  await agent?.kill();
  rmSync(dir, { recursive: true, force: true });
});

const get = (...args: string[]) => spawnSync(process.execPath, [CLI, 'get', ...args, '--admin-addr', agent.adminAddr], { encoding: 'utf8', timeout: 15_000 });

/** The table's rows as header → cell maps. */
function rows(text: string): Record<string, string>[] {
  const lines = text.trimEnd().split('\n');
  const header = lines[0];
  const starts = [...header.matchAll(/\S+/g)].map((match) => ({ title: match[0], at: match.index! }));
  return lines.slice(1).map((line) =>
    Object.fromEntries(starts.map((column, index) => [column.title, line.slice(column.at, starts[index + 1]?.at ?? line.length).trim()])),
  );
}

test('get columns: LAST as published (not rounded, every value of a multi-value reading, no float noise); a Sink READY only while connected; Firmware VERSION, PHASE, PROGRESS and a stalled download with its reason', async () => {
  const sensors = Object.fromEntries(rows(get('sensors').stdout).map((row) => [`${row.NAMESPACE}/${row.NAME}`, row]));
  assert.equal(sensors['default/big'].LAST, '123456789');
  assert.equal(sensors['other/big'].LAST, '5');
  assert.equal(sensors['default/scaled'].LAST, '3.3');
  assert.equal(sensors['default/pair'].LAST, 'a=0.1 b=-12.6');
  // The clean decimal is what the sinks publish, not only what the table shows.
  const published = await waitFor(
    () => {
      const lines = agent.stdout.split('\n');
      const scaled = lines.find((line) => line.includes('"sensor":"scaled"'));
      const pair = lines.find((line) => line.includes('"sensor":"pair"'));
      return scaled && pair ? { scaled, pair } : undefined;
    },
    { timeoutMs: 5000, what: 'readings of both file Sensors on the stdout sink' },
  );
  assert.match(published.scaled, /"value":3\.3[,}]/);
  assert.match(published.pair, /"values":\{"a":0\.1,"b":-12\.6\}/);
  assert.ok(!/3\.30000000|12\.60000000/.test(agent.stdout), 'no float noise anywhere on stdout');

  await agent.waitForCondition('Sink', 'uplink', 'Ready', 'False', 'ConnectionRefused');
  const sinks = Object.fromEntries(rows(get('sinks').stdout).map((row) => [row.NAME, row]));
  assert.deepEqual([sinks.uplink.READY, sinks.uplink.REASON, sinks.uplink.CONNECTED], ['0/1', 'ConnectionRefused', 'False']);
  assert.deepEqual([sinks.console.READY, sinks.console.REASON, sinks.console.CONNECTED], ['1/1', 'Connected', 'True']);
  assert.match(rows(get('sinks', '-o', 'wide').stdout).find((row) => row.NAME === 'uplink')!.MESSAGE, /connection\(s\) down.*readings wait in the outbox/);

  await agent.waitForCondition('Firmware', 'modem', 'Ready', 'False', 'DownloadStalled', 15_000);
  const firmware = rows(get('fw', '-o', 'wide').stdout)[0];
  assert.equal(firmware.VERSION, '2.0.0');
  assert.equal(firmware.PHASE, 'Downloading');
  assert.equal(firmware.PROGRESS, '0%');
  assert.equal(firmware.REASON, 'DownloadStalled');
  assert.match(firmware.MESSAGE, /^download of 2\.0\.0 stalled at 0% \(0 of 4096 bytes\) since .*ECONNREFUSED.*retrying/);
});

test('/metrics: namespace on every per-resource series, counters as counters, process_* and nodejs_* under their standard names, sink connected and firmware gauges; the dashboard uses only metrics the agent exports', async () => {
  await waitFor(async () => /sensorlet_outbox_dropped_total\{/.test(await agent.metrics()), { timeoutMs: 5000, what: 'outbox counters reported' });
  const text = await agent.metrics();
  const kindLabels = ['sensor', 'sink', 'firmware', 'certificate'];
  for (const line of text.split('\n').filter((each) => each.startsWith('sensorlet_'))) {
    const labels = /\{(.*)\}/.exec(line)?.[1] ?? '';
    if (kindLabels.some((label) => new RegExp(`(^|,)${label}="`).test(labels))) assert.match(labels, /^namespace="[^"]+",/, `namespace first: ${line}`);
  }
  assert.match(text, /^sensorlet_readings_total\{namespace="default",sensor="big"\} [1-9]/m);
  assert.match(text, /^sensorlet_readings_total\{namespace="other",sensor="big"\} [1-9]/m);
  assert.match(text, /^# TYPE sensorlet_outbox_dropped_total counter$/m);
  assert.match(text, /^# TYPE sensorlet_outbox_corrupt_chunks_total counter$/m);
  assert.match(text, /^sensorlet_outbox_corrupt_chunks_total\{namespace="default",sink="console"\} 0$/m);
  assert.match(text, /^# TYPE process_cpu_seconds_total counter$/m);
  assert.match(text, /^process_resident_memory_bytes \d+/m);
  assert.match(text, /^# TYPE nodejs_eventloop_lag_p99_seconds gauge$/m);
  assert.doesNotMatch(text, /sensorlet_process_/);
  assert.match(text, /^sensorlet_sink_connected\{namespace="default",sink="console",connection="default"\} 1$/m);
  assert.match(text, /^sensorlet_sink_connected\{namespace="default",sink="uplink",connection="default"\} 0$/m);
  assert.match(text, /^sensorlet_firmware_phase\{namespace="default",firmware="modem",phase="Downloading"\} 1$/m);
  assert.match(text, /^sensorlet_firmware_phase\{namespace="default",firmware="modem",phase="Succeeded"\} 0$/m);
  assert.match(text, /^sensorlet_firmware_download_progress_ratio\{namespace="default",firmware="modem"\} 0$/m);

  const exported = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name, type]) => (type === 'histogram' ? [name, `${name}_bucket`, `${name}_sum`, `${name}_count`] : [name])));
  const dashboard = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'helm', 'sensorlet', 'dashboards', 'sensorlet.json'), 'utf8'));
  const expressions: string[] = JSON.stringify(dashboard).match(/"(expr|definition)":"(?:[^"\\]|\\.)*"/g) ?? [];
  const used = new Set(expressions.flatMap((expression) => expression.match(/\b(?:sensorlet|process|nodejs)_[a-z0-9_]+/g) ?? []));
  assert.ok(used.size >= 15, `the dashboard queries ${used.size} metrics`);
  for (const name of used) assert.ok(exported.has(name), `the dashboard queries ${name}, which the agent does not export`);
});

test('get: a kind by its short, singular or plural name in any case; an unknown kind exits 1 listing the kinds; --help lists every kind', () => {
  // Every name of every kind is resolved in get.test.ts; here a few, through the real CLI.
  assert.deepEqual(rows(get('sen').stdout).map((row) => row.NAME).sort(), ['big', 'big', 'pair', 'scaled']);
  const firmwares = get('Firmwares', '-o', 'json');
  assert.equal(firmwares.status, 0, firmwares.stderr);
  assert.deepEqual((JSON.parse(firmwares.stdout) as { items: { kind: string }[] }).items.map((item) => item.kind), ['Firmware']);
  assert.match(get('cert').stdout, /^No certificates found\.$/m);

  const bogus = get('bogus');
  assert.equal(bogus.status, 1);
  assert.equal(bogus.stdout, '');
  assert.match(bogus.stderr, /^error: unknown kind "bogus"; the kinds are:/);
  for (const kind of KINDS) assert.match(bogus.stderr, new RegExp(`^  ${KIND_NAMES[kind].plural} \\(`, 'm'));

  const help = spawnSync(process.execPath, [CLI, 'get', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  for (const kind of KINDS) {
    for (const name of [KIND_NAMES[kind].singular, KIND_NAMES[kind].plural, ...KIND_NAMES[kind].shortNames]) assert.match(help.stdout, new RegExp(`\\b${name}\\b`), `get --help names ${name}`);
  }
  assert.match(help.stdout, /-w, --watch/);
});

test('get -w prints again when what it shows changes, and ends with status 0 on Ctrl-C', async () => {
  const watcher = spawn(process.execPath, [CLI, 'get', 'sensor', 'scaled', '-w', '--admin-addr', agent.adminAddr], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  watcher.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  try {
    await waitFor(() => /\b3\.3\b/.test(output), { timeoutMs: 10_000, what: 'the first table' });
    writeFileSync(path.join(data, 'raw'), 'T=-126\n');
    await waitFor(() => /-12\.6\b/.test(output), { timeoutMs: 10_000, what: 'the table printed again with the new value' });
    assert.ok((output.match(/^NAMESPACE/gm) ?? []).length >= 2, 'printed more than once');
  } finally {
    watcher.kill('SIGINT');
  }
  const code = await new Promise<number | null>((resolve) => watcher.once('exit', resolve));
  assert.equal(code, 0);
});

test('admin API: a wrong method is 405 with Allow; every reload (POST /reload, SIGHUP) logs one info line naming what asked for it', async () => {
  const wrong = await fetch(`http://${agent.adminAddr}/reload`);
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get('allow'), 'POST');
  const posted = await fetch(`http://${agent.adminAddr}/metrics`, { method: 'POST' });
  assert.equal(posted.status, 405);
  assert.equal(posted.headers.get('allow'), 'GET, HEAD');

  const reloadLines = (trigger: string) =>
    agent.stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { level: number; msg: string; trigger?: string; component?: string })
      .filter((entry) => entry.component === 'reload' && entry.trigger === trigger);
  await agent.reload();
  await waitFor(() => reloadLines('POST /reload').length === 1, { timeoutMs: 5000, what: 'the POST /reload log line' });
  agent.child.kill('SIGHUP');
  await waitFor(() => reloadLines('SIGHUP').length === 1, { timeoutMs: 5000, what: 'the SIGHUP log line' });
  for (const entry of [...reloadLines('POST /reload'), ...reloadLines('SIGHUP')]) {
    assert.equal(entry.level, 30, 'info');
    assert.match(entry.msg, /^reloaded \((POST \/reload|SIGHUP)\): manifests re-read, 7 resource\(s\) resynced$/);
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(reloadLines('SIGHUP').length, 1, 'one line per reload');
});

test('a deleted Sink leaves /metrics: its gauges go, the others stay', async () => {
  const before = await agent.metrics();
  assert.match(before, /^sensorlet_sink_queue_depth\{namespace="default",sink="uplink"\} /m);
  writeFileSync(path.join(manifests, 'sinks.yaml'), readFileSync(path.join(manifests, 'sinks.yaml'), 'utf8').split('---\n')[0]);
  await waitFor(async () => !/sink="uplink"/.test((await agent.metrics()).split('\n').filter((line) => /^sensorlet_(sink_queue_depth|sink_connected|outbox_bytes|outbox_oldest_seconds)\{/.test(line)).join('\n')), {
    timeoutMs: 10_000,
    what: 'the gauges of Sink uplink removed',
  });
  const after = await agent.metrics();
  assert.match(after, /^sensorlet_sink_queue_depth\{namespace="default",sink="console"\} /m);
  assert.match(after, /^sensorlet_sink_connected\{namespace="default",sink="console",connection="default"\} 1$/m);
});
