// The same example manifests, fed to the folder source and (applied to the API server) to the
// cluster source, declare the same resources: same kind, namespace, name, labels and spec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readdirSync, readFileSync } from 'node:fs';
import yaml from 'js-yaml';
import { PACKAGE_ROOT } from '../../api/schemas.js';
import { DEFAULT_NAMESPACE } from '../../api/resource.js';
import { FakeApiServer, type KubeObject } from '../../../test/support/fake-apiserver.js';
import { waitFor } from '../../../test/support/ports.js';
import { silentLogger } from '../../observability/logger.js';
import { createDirectorySource } from '../directory.js';
import type { ResourceSource, SourceDocument, SourceListener } from '../source.js';
import { createKubernetesSource } from './source.js';

const EXAMPLES = path.join(PACKAGE_ROOT, 'manifests', 'examples');

type Declared = { kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; spec?: unknown };

async function collect(source: ResourceSource): Promise<Map<string, Declared>> {
  const byOrigin = new Map<string, SourceDocument[]>();
  let synced = false;
  const listener: SourceListener = {
    replace: (origin, documents) => void (documents.length ? byOrigin.set(origin, documents) : byOrigin.delete(origin)),
    replaceMany: (changes) => changes.forEach((documents, origin) => listener.replace(origin, documents)),
    synced: () => void (synced = true),
  };
  await source.start(listener);
  await waitFor(() => synced, { what: 'source synced' });
  await source.stop();
  const resources = new Map<string, Declared>();
  for (const documents of byOrigin.values()) {
    for (const document of documents) {
      assert.ok(document.object, `parses: ${JSON.stringify(document.parseError)}`);
      const object = document.object as Declared;
      const key = `${object.kind}/${object.metadata.namespace ?? DEFAULT_NAMESPACE}/${object.metadata.name}`;
      assert.ok(!resources.has(key), `declared once: ${key}`);
      resources.set(key, object);
    }
  }
  return resources;
}

/** The documents `kubectl apply -R -f manifests/examples` would send, read independently of the folder source. */
function exampleDocuments(dir: string): KubeObject[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return exampleDocuments(full);
    if (!/\.(ya?ml|json)$/.test(entry.name)) return [];
    return yaml.loadAll(readFileSync(full, 'utf8')).filter((document) => document !== null && typeof document === 'object') as KubeObject[];
  });
}

const comparable = (object: Declared) => ({ labels: object.metadata.labels ?? {}, spec: object.spec });

test('manifests/examples declare the same resources in folder mode and in cluster mode', async () => {
  const folder = await collect(createDirectorySource(EXAMPLES, silentLogger()));
  assert.ok(folder.size >= 3, `examples exist under ${EXAMPLES}`);

  const fake = await FakeApiServer.start();
  try {
    const documents = exampleDocuments(EXAMPLES);
    assert.equal(documents.length, folder.size);
    for (const object of documents) fake.apply(object);
    fake.setNodeLabels('gateway-7', {});
    const cluster = await collect(
      await createKubernetesSource({ kubeconfigFile: fake.writeKubeconfig(), nodeName: 'gateway-7', logger: silentLogger(), resyncIntervalMs: 0 }),
    );
    assert.deepEqual([...cluster.keys()].sort(), [...folder.keys()].sort());
    for (const [key, object] of folder) assert.deepEqual(comparable(cluster.get(key)!), comparable(object), key);
  } finally {
    await fake.close();
  }
});
