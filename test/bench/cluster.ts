// Bench: RSS of the agent in cluster mode (against the in-test API server) next to folder mode,
// with the same manifests: a few simulated Sensors and an MQTT Sink to a real Mosquitto. Cluster mode
// loads @kubernetes/client-node (~80 MB, DESIGN.md); the target is ≤ 140 MB.
//
//   import { benchClusterRss } from './cluster.js';
//   const { clusterMb, folderMb } = await benchClusterRss();        // ~25 s
//
// Standalone: `node dist/test/bench/cluster.js` prints both figures.
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yaml from 'js-yaml';
import { AgentProcess, counterSensor, manifestsDir, mqttSink, rssMb, sleep } from './harness.js';
import { FakeApiServer, type KubeObject } from '../support/fake-apiserver.js';
import { Mosquitto } from '../support/mosquitto.js';
import { waitFor } from '../support/ports.js';

export const CLUSTER_RSS_TARGET_MB = 140;

export interface ClusterRssOptions {
  /** How long both agents run before RSS is read; default 20 s. */
  seconds?: number;
  /** Simulated Sensors at 1 s; default 5. */
  sensors?: number;
}

async function allSensorsReady(agent: AgentProcess, count: number): Promise<void> {
  await waitFor(
    async () => {
      const sensors = (await agent.resources()).filter((item) => item.kind === 'Sensor');
      return sensors.length === count && sensors.every((item) => item.status.nodes[0]?.conditions.some((c) => c.type === 'Ready' && c.status === 'True'));
    },
    { timeoutMs: 20_000, what: `${count} Sensors Ready` },
  );
}

export async function benchClusterRss(options: ClusterRssOptions = {}): Promise<{ clusterMb: number; folderMb: number }> {
  const seconds = options.seconds ?? 20;
  const count = options.sensors ?? 5;
  const broker = await Mosquitto.start();
  const fake = await FakeApiServer.start();
  const text = [
    ...Array.from({ length: count }, (_, index) => counterSensor(`bench-${index}`, '1s', 1)),
    mqttSink('bench-mqtt', broker.url, { maxDelay: '200ms' }),
  ].join('---\n');
  const dir = manifestsDir({ 'bench.yaml': text });
  let cluster: AgentProcess | undefined;
  let folder: AgentProcess | undefined;
  try {
    for (const document of yaml.loadAll(text) as KubeObject[]) fake.apply(document);
    fake.setNodeLabels('bench-node', {});
    const quiet = ['--log-level', 'warn', '--node-name', 'bench-node'];
    // Side by side: both see the same load for the same time.
    [cluster, folder] = await Promise.all([
      AgentProcess.start({ deviceId: 'bench-node', extraArgs: ['--kubeconfig', fake.writeKubeconfig(), ...quiet] }),
      AgentProcess.start({ manifests: dir, deviceId: 'bench-node', extraArgs: quiet }),
    ]);
    await Promise.all([allSensorsReady(cluster, count), allSensorsReady(folder, count)]);
    await sleep(seconds * 1000);
    return { clusterMb: rssMb(cluster.child.pid!), folderMb: rssMb(folder.child.pid!) };
  } finally {
    await Promise.all([cluster?.stop(), folder?.stop()]);
    for (const agent of [cluster, folder]) if (agent) rmSync(agent.stateDir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    await fake.close();
    await broker.stop();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { clusterMb, folderMb } = await benchClusterRss();
  const ok = clusterMb <= CLUSTER_RSS_TARGET_MB;
  console.log(`RSS cluster mode: ${clusterMb.toFixed(1)} MB (target ≤ ${CLUSTER_RSS_TARGET_MB}) ${ok ? 'ok' : 'OVER'}; folder mode: ${folderMb.toFixed(1)} MB`);
  process.exitCode = ok ? 0 : 1;
}
