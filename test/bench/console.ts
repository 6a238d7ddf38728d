// Bench: what the web console costs. Its size (every asset, gzipped, as served), and the agent's
// RSS and CPU with the page open in Chromium against the same agent without it: 100 Sensors at 1 s
// feeding an MQTT Sink: a window without the page, the same window with the page open, and one more
// without it after the page closed. All on the same agent process, so start-up and the spread of RSS
// between processes do not count; the CPU baseline is the mean of the windows before and after, so
// that drift over the run (the rings filling, the heap settling) does not count either; the RSS
// baseline is the window before (RSS does not shrink back when the page closes).
// Targets: ≤ 150 KB gzipped, RSS +≤ 5 MB, CPU +≤ 2 % of a core. Every wait is bounded.
import { rmSync } from 'node:fs';
import { consoleSizes } from '../../pkg/console/assets.js';
import { launchChromium } from '../support/chromium.js';
import { AgentProcess, counterSensor, cpuSeconds, manifestsDir, median, mqttSink, rssMb, sleep } from './harness.js';

const SENSORS = 100;
const WARMUP_MS = 10_000;
const WINDOW_MS = 20_000;
/** After the page opens: its snapshot, the first updates, and the agent's allocations settling. */
const PAGE_SETTLE_MS = 5_000;

export interface ConsoleCost {
  /** Gzipped bytes per asset, and their sum. */
  sizes: Record<string, number>;
  totalBytes: number;
  runs: { rssWithout: number; rssWith: number; cpuWithout: number; cpuWith: number }[];
  rssGrowthMb: number;
  cpuIncreasePercent: number;
}

/** RSS (MB, mean of one sample a second) and CPU (% of a core) of a process over a window. */
async function usage(pid: number, windowMs: number): Promise<{ rss: number; cpu: number }> {
  const samples: number[] = [];
  const cpuBefore = cpuSeconds(pid);
  const started = performance.now();
  while (performance.now() - started < windowMs) {
    await sleep(1000);
    samples.push(rssMb(pid));
  }
  const cpu = ((cpuSeconds(pid) - cpuBefore) / ((performance.now() - started) / 1000)) * 100;
  return { rss: samples.reduce((sum, each) => sum + each, 0) / samples.length, cpu };
}

async function oneRun(brokerUrl: string): Promise<ConsoleCost['runs'][number]> {
  const files: Record<string, string> = { 'sink.yaml': mqttSink('console', brokerUrl, { maxDelay: '200ms' }) };
  const sensors: string[] = [];
  for (let i = 0; i < SENSORS; i++) sensors.push(counterSensor(`sensor-${String(i).padStart(3, '0')}`, '1s', 1));
  files['sensors.yaml'] = sensors.join('---\n');
  const manifests = manifestsDir(files);
  const stateDir = manifestsDir({});
  const agent = await AgentProcess.start({ manifests, stateDir, extraArgs: ['--log-level', 'warn'] });
  let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
  try {
    const pid = agent.child.pid!;
    await sleep(WARMUP_MS);
    const without = await usage(pid, WINDOW_MS);
    browser = await launchChromium();
    const page = await browser.context.newPage();
    await page.goto(`http://${agent.adminAddr}/`);
    await page.locator('#link[data-state="live"]').waitFor({ timeout: 15_000 });
    await page.locator('#kind-Sensor tbody tr').nth(SENSORS - 1).waitFor({ timeout: 15_000 });
    await sleep(PAGE_SETTLE_MS);
    const withPage = await usage(pid, WINDOW_MS);
    await browser.close();
    browser = undefined;
    await sleep(PAGE_SETTLE_MS);
    const after = await usage(pid, WINDOW_MS);
    return { rssWithout: without.rss, rssWith: withPage.rss, cpuWithout: (without.cpu + after.cpu) / 2, cpuWith: withPage.cpu };
  } finally {
    await browser?.close();
    await agent.kill();
    rmSync(manifests, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  }
}

export async function benchConsole(brokerUrl: string, runs = 3): Promise<ConsoleCost> {
  const sizes = consoleSizes();
  const results: ConsoleCost['runs'] = [];
  for (let i = 0; i < runs; i++) results.push(await oneRun(brokerUrl));
  return {
    sizes,
    totalBytes: Object.values(sizes).reduce((sum, size) => sum + size, 0),
    runs: results,
    rssGrowthMb: median(results.map((run) => run.rssWith - run.rssWithout)),
    cpuIncreasePercent: median(results.map((run) => run.cpuWith - run.cpuWithout)),
  };
}
