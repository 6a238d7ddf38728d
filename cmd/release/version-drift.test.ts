// One version everywhere: package.json's version is what `sensorlet --version` prints, the tag of
// the image `npm run image` builds, the image the DaemonSet runs, the chart's appVersion and the
// chart's default image. And one set of V8 flags: npm start's, in every launcher.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { AGENT_NODE_FLAGS, CLI } from '../../test/support/agent.js';
import { launcherScript, startNodeFlags } from './app.js';
import { imageEntrypoint, imageReference } from './image.js';
import { IMAGE_REPOSITORY } from './platforms.js';

const read = (relative: string) => readFileSync(path.join(PACKAGE_ROOT, relative), 'utf8');
const VERSION = (JSON.parse(read('package.json')) as { version: string }).version;

type Container = { name: string; image: string; env?: { name: string; value?: string }[] };
type DaemonSet = { kind: string; spec: { template: { spec: { containers: Container[]; initContainers?: Container[] } } } };

test('package.json, sensorlet --version, the built image, the DaemonSet and the chart name one version', () => {
  assert.match(VERSION, /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/);
  const printed = spawnSync(process.execPath, [CLI, '--version'], { encoding: 'utf8' });
  assert.equal(printed.status, 0, printed.stderr);
  assert.match(printed.stdout.trim(), new RegExp(`^sensorlet ${VERSION.replace(/\./g, '\\.')} \\(commit ([0-9a-f]{40}(-dirty)?|unknown)\\)$`));

  const expected = `${IMAGE_REPOSITORY}:${VERSION}`;
  assert.equal(imageReference(), expected, 'npm run image tags the image with the package version');

  const daemonSet = (yaml.loadAll(read('manifests/deploy/daemonset.yaml')) as DaemonSet[]).find((doc) => doc?.kind === 'DaemonSet');
  assert.ok(daemonSet, 'manifests/deploy/daemonset.yaml has a DaemonSet');
  const pod = daemonSet.spec.template.spec;
  for (const container of [...pod.containers, ...(pod.initContainers ?? [])]) {
    assert.equal(container.image, expected, `manifests/deploy/daemonset.yaml: container ${container.name} runs the image the build produces`);
  }

  const chart = yaml.load(read('helm/sensorlet/Chart.yaml')) as { appVersion: string };
  assert.equal(String(chart.appVersion), VERSION, 'helm/sensorlet/Chart.yaml appVersion');
  const values = yaml.load(read('helm/sensorlet/values.yaml')) as { image: { repository: string; tag: string } };
  assert.equal(values.image.repository, IMAGE_REPOSITORY, 'helm/sensorlet/values.yaml image.repository');
  assert.ok(values.image.tag === '' || values.image.tag === VERSION, `helm/sensorlet/values.yaml image.tag is empty (appVersion) or ${VERSION}, not ${values.image.tag}`);
  const template = read('helm/sensorlet/templates/daemonset.yaml');
  const images = [...template.matchAll(/image: (.+)/g)].map((match) => match[1].trim());
  assert.ok(images.length > 0, 'the chart template names an image');
  for (const image of images) assert.equal(image, '"{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}"', 'the chart defaults to appVersion');

  assert.match(read('Dockerfile'), new RegExp(`org\\.opencontainers\\.image\\.version="${VERSION.replace(/\./g, '\\.')}"`), 'the Dockerfile labels the package version');
});

test('the Dockerfile configures the image as npm run image does', () => {
  const dockerfile = read('Dockerfile');
  const entrypoint = /^ENTRYPOINT (.+)$/m.exec(dockerfile)?.[1];
  assert.deepEqual(JSON.parse(entrypoint ?? 'null'), imageEntrypoint());
  assert.match(dockerfile, /^USER 65532:65532$/m);
  assert.match(dockerfile, /^CMD \["run", "--manifests", "\/etc\/sensorlet\/manifests", "--state-dir", "\/var\/lib\/sensorlet"\]$/m);
});

test('the image entrypoint, the packages\' launcher and the DaemonSet use the V8 flags of npm start', () => {
  assert.deepEqual(startNodeFlags(), AGENT_NODE_FLAGS);
  assert.deepEqual(imageEntrypoint().slice(1, -1), AGENT_NODE_FLAGS);
  // The Dockerfile is written by hand: its ENTRYPOINT's flags are compared with npm start's directly.
  const dockerEntrypoint = JSON.parse(/^ENTRYPOINT (.+)$/m.exec(read('Dockerfile'))?.[1] ?? '[]') as string[];
  assert.deepEqual(dockerEntrypoint.slice(1, -1), startNodeFlags(), 'the Dockerfile ENTRYPOINT runs node with the flags of npm start');
  assert.ok(launcherScript().includes(` ${AGENT_NODE_FLAGS.join(' ')} `), launcherScript());
  const daemonSet = (yaml.loadAll(read('manifests/deploy/daemonset.yaml')) as DaemonSet[]).find((doc) => doc?.kind === 'DaemonSet')!;
  const nodeOptions = daemonSet.spec.template.spec.containers[0].env?.find((env) => env.name === 'NODE_OPTIONS')?.value;
  if (nodeOptions !== undefined) assert.deepEqual(nodeOptions.split(' '), AGENT_NODE_FLAGS);
});
