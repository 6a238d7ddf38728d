import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { register } from 'node:module';
import { MessageChannel } from 'node:worker_threads';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { silentLogger } from '../observability/logger.js';

// A resolve hook reports every module this process loads from now on. Nothing above imports the
// agent, so its whole module graph goes through the hook.
const loaded = new Set<string>();
const { port1, port2 } = new MessageChannel();
port1.on('message', (url: string) => loaded.add(url));
port1.unref();
const hooks = `
let port;
export function initialize(data) { port = data.port; }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  port.postMessage(result.url);
  return result;
}`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`, { data: { port: port2 }, transferList: [port2] });

const OTA_MACHINERY = ['/ota/coordinator.js', '/ota/download.js', '/ota/verify.js', '/controller/reconcilers/firmware.js'];
const otaLoaded = () => [...loaded].filter((url) => OTA_MACHINERY.some((file) => url.endsWith(file)));

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('an agent without a Firmware never loads the OTA machinery; the first Firmware reconciled loads it', async () => {
  const { startAgent } = await import('./agent.js');
  const dir = mkdtempSync(path.join(tmpdir(), 'agent-lazy-'));
  const manifests = path.join(dir, 'manifests');
  mkdirSync(manifests);
  writeFileSync(
    path.join(manifests, 'sensor.yaml'),
    'apiVersion: sensorlet.io/v1alpha1\nkind: Sensor\nmetadata: { name: s }\nspec: { driver: { simulated: {} }, interval: 1s }\n',
  );
  const agent = await startAgent({ manifests, stateDir: path.join(dir, 'state'), adminAddr: '127.0.0.1:0', deviceId: 'd', nodeName: 'd', logger: silentLogger() });
  try {
    await until(() => agent.ready(), 'the initial sync');
    // Messages from the hook thread arrive asynchronously: give the last ones time to land.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok([...loaded].some((url) => url.endsWith('/controller/manager.js')), 'the hook sees the agent load');
    assert.deepEqual(otaLoaded(), []);

    // Even an invalid Firmware goes to its reconciler, which reports it.
    writeFileSync(path.join(manifests, 'firmware.yaml'), 'apiVersion: sensorlet.io/v1alpha1\nkind: Firmware\nmetadata: { name: fw }\nspec: {}\n');
    await agent.reload();
    await until(() => agent.runtime.status.get('Firmware/default/fw') !== undefined, 'the Firmware status');
    await until(() => otaLoaded().length === OTA_MACHINERY.length, 'the OTA modules', 2000).catch(() => undefined);
    assert.deepEqual(otaLoaded().map((url) => OTA_MACHINERY.find((file) => url.endsWith(file))).sort(), [...OTA_MACHINERY].sort());
  } finally {
    await agent.stop();
  }
});
