// Bench: the liveness probe under admin load. An agent with 10k Sensors gets 20 concurrent
// POST /reload (the burst that once kept /healthz waiting 18 s), then 5 concurrent GETs of
// /api/v1/resources and of /metrics, while another process polls /healthz every 20 ms as the
// kubelet would. Target: no /healthz answer slower than 100 ms. Every loop is bounded in count and time.
// Run alone with `node dist/test/bench/admin.js [SENSORS]`; `benchAdminDetailed()` is what `npm run bench` calls.
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { AgentProcess, manifestsDir, metricValue, sleep } from './harness.js';

export interface AdminLoadResult {
  sensors: number;
  /** Slowest /healthz answer (ms) during each burst. */
  reloadsMaxMs: number;
  resourcesMaxMs: number;
  metricsMaxMs: number;
  /** How long the burst of reloads took to answer (ms). */
  reloadsMs: number;
  /** Reconcile passes over every Sensor the burst of reloads caused. */
  reloadPasses: number;
}

const POLLER = `
const [addr] = process.argv.slice(1);
const latencies = [];
let stop = false;
process.on('message', () => (stop = true));
(async () => {
  // Warm-up: the poller's own first requests (connection, JIT) are not the agent's latency.
  for (let i = 0; i < 5; i++) await (await fetch('http://' + addr + '/healthz')).text();
  process.send('ready');
  const deadline = Date.now() + 120000;
  while (!stop && Date.now() < deadline) {
    const begin = performance.now();
    await (await fetch('http://' + addr + '/healthz')).text();
    latencies.push(performance.now() - begin);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  process.send(latencies, () => process.exit(0));
})();
`;

/** The slowest /healthz answer while `work` runs. */
async function probeWhile(adminAddr: string, work: () => Promise<void>): Promise<number> {
  const poller = spawn(process.execPath, ['-e', POLLER, adminAddr], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const messages: unknown[] = [];
  const next = () => new Promise<unknown>((resolve) => poller.once('message', resolve));
  messages.push(await next());
  const latencies = next();
  await sleep(200);
  await work();
  await sleep(500);
  poller.send('stop');
  return Math.max(...((await latencies) as number[]));
}

function sensorFiles(count: number): Record<string, string> {
  const files: Record<string, string> = {};
  const perFile = 100;
  for (let file = 0; file * perFile < count; file++) {
    let text = '';
    for (let index = file * perFile; index < Math.min(count, (file + 1) * perFile); index++) {
      text += `---\napiVersion: sensorlet.io/v1alpha1\nkind: Sensor\nmetadata: { name: s-${index}, labels: { site: a } }\nspec:\n  driver: { simulated: { waveform: sine } }\n  interval: 1h\n`;
    }
    files[`sensors-${file}.yaml`] = text;
  }
  return files;
}

export async function benchAdminDetailed(sensors = 10_000): Promise<AdminLoadResult> {
  const dir = manifestsDir(sensorFiles(sensors));
  const agent = await AgentProcess.start({ manifests: dir, extraArgs: ['--log-level', 'warn'], readyTimeoutMs: 180_000 });
  const base = `http://${agent.adminAddr}`;
  const reconciles = async () => metricValue(await agent.metrics(), 'sensorlet_reconcile_total', 'kind="Sensor",result="success"');
  try {
    const deadline = Date.now() + 120_000;
    while ((await reconciles()) < sensors && Date.now() < deadline) await sleep(500);
    await sleep(1000);
    const before = await reconciles();
    let reloadsMs = 0;
    const reloadsMaxMs = await probeWhile(agent.adminAddr, async () => {
      const started = performance.now();
      await Promise.all(Array.from({ length: 20 }, () => fetch(`${base}/reload`, { method: 'POST' }).then((response) => response.text())));
      reloadsMs = performance.now() - started;
      // The reconciles the reloads queued run after the answers: wait for them under the probe too.
      let last = -1;
      for (let round = 0; round < 240; round++) {
        const now = await reconciles();
        if (now === last) break;
        last = now;
        await sleep(500);
      }
    });
    const reloadPasses = ((await reconciles()) - before) / sensors;
    const resourcesMaxMs = await probeWhile(agent.adminAddr, async () => {
      await Promise.all(Array.from({ length: 5 }, () => fetch(`${base}/api/v1/resources`).then((response) => response.text())));
    });
    const metricsMaxMs = await probeWhile(agent.adminAddr, async () => {
      await Promise.all(Array.from({ length: 5 }, () => fetch(`${base}/metrics`).then((response) => response.text())));
    });
    return { sensors, reloadsMaxMs, resourcesMaxMs, metricsMaxMs, reloadsMs, reloadPasses };
  } finally {
    await agent.kill();
    rmSync(dir, { recursive: true, force: true });
    rmSync(agent.stateDir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await benchAdminDetailed(Number(process.argv[2] ?? 10_000));
  console.log(JSON.stringify(result, null, 2));
  process.exit(0);
}
