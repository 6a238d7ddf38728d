// The web console in a real browser: Debian's headless Chromium (playwright-core) against a running
// agent with simulated Sensors and a real Mosquitto. One agent, one broker, one browser for every
// case, in the order a person would see them: the token form, the resources, values moving, the
// broker going away, a broken manifest arriving. Screenshots of each state go to
// test-artifacts/console/ (git-ignored; CI keeps the folder).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { AgentProcess } from '../support/agent.js';
import { Mosquitto } from '../support/mosquitto.js';
import { ARTIFACTS_DIR, launchChromium, type Chromium } from '../support/chromium.js';
import { TestPki, spiffeId } from '../support/pki.js';
import { pemCertificate } from '../support/mtls-manifests.js';
import { consoleSizes } from '../../pkg/console/assets.js';
import { ArtifactServer } from '../../pkg/ota/testing/artifact-server.js';
import { signatureYaml, signedArtifact, trustKey } from '../../pkg/ota/testing/artifacts.js';

const TOKEN = 'console-test-token-0123456789';
const SHOTS = path.join(ARTIFACTS_DIR, 'console');
/** Injected into every string a manifest controls that the page shows: it must stay text. */
const INJECTION = `<img src=x onerror=window.__injected=1>`;

function sensor(name: string, interval: string): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: ${name}, labels: { site: plant-1 } }
spec:
  driver: { simulated: { waveform: counter, min: 0, step: 1 } }
  interval: ${interval}
  unit: Cel
`;
}

let broker: Mosquitto;
let agent: AgentProcess;
let browser: Chromium;
let page: Page;
let manifests: string;
let secrets: string;
let pki: TestPki;
let artifacts: ArtifactServer;
/** The Firmware's artifact comes over a link slow enough that it is still downloading when the test ends. */
const ARTIFACT_SIZE = 256 * 1024;
const ARTIFACT_BYTES_PER_SECOND = 4096;

before(async () => {
  broker = await Mosquitto.start();
  manifests = mkdtempSync(path.join(tmpdir(), 'sensorlet-console-'));
  secrets = mkdtempSync(path.join(tmpdir(), 'sensorlet-console-token-'));
  writeFileSync(path.join(secrets, 'token'), `${TOKEN}\n`, { mode: 0o600 });
  writeFileSync(path.join(manifests, 'sensors.yaml'), [sensor('temp-a', '200ms'), sensor('temp-b', '500ms')].join('---\n'));
  writeFileSync(
    path.join(manifests, 'sink.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: plant-mqtt }
spec:
  selector: { matchLabels: { site: plant-1 } }
  mqtt: { url: "${broker.url}", protocolVersion: 5, qos: 1, topic: "console/{sensor}" }
  batch: { maxReadings: 50, maxDelay: 50ms }
`,
  );
  // Broken from the start: its reason, and a message quoting what the author wrote.
  writeFileSync(path.join(manifests, 'broken.yaml'), sensor('bad-interval', JSON.stringify(INJECTION)));
  // A device identity valid for 30 days more.
  pki = TestPki.create();
  const identity = pki.issue({ name: 'device', cn: 'acme', sans: [spiffeId('acme', 'gw-console')], notAfter: new Date(Date.now() + 30 * 86400_000 + 3600_000) });
  writeFileSync(path.join(manifests, 'certificate.yaml'), pemCertificate('device-identity', { certFile: identity.certFile, keyFile: identity.keyFile, caFile: pki.ca.certFile }));
  // A Firmware downloading its (signed) artifact over a slow link: the page shows its progress.
  const artifact = signedArtifact(ARTIFACT_SIZE);
  artifacts = await ArtifactServer.start(artifact.body);
  artifacts.faults.bytesPerSecond = ARTIFACT_BYTES_PER_SECOND;
  trustKey(path.join(secrets, 'trust'), 'release', artifact.key);
  writeFileSync(
    path.join(manifests, 'firmware.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Firmware
metadata: { name: modem }
spec:
  version: "2.0.0"
  target: command
  artifact:
    url: ${artifacts.url()}
    sha256: "${artifact.sha256}"
    size: ${ARTIFACT_SIZE}
    signature: ${signatureYaml(artifact.sign({ version: '2.0.0', target: 'command', install: { command: ['/bin/true', '{file}'] } }))}
  install: { command: ["/bin/true", "{file}"] }
`,
  );
  rmSync(SHOTS, { recursive: true, force: true });
  mkdirSync(SHOTS, { recursive: true });
  // A token file binds the admin API on loopback too: the page must go through the token form.
  agent = await AgentProcess.start({
    manifests,
    deviceId: 'gw-console',
    adminToken: TOKEN,
    extraArgs: [
      '--admin-token-file', path.join(secrets, 'token'),
      '--certificate-dir', pki.dir,
      '--tenant-grant=default=acme',
      '--allow-firmware-commands',
      '--firmware-command-allowlist', '/bin/true',
      '--firmware-trust-dir', path.join(secrets, 'trust'),
    ],
  });
  browser = await launchChromium();
  page = await browser.context.newPage();
});

after(async () => {
  await browser?.close();
  await agent?.stop();
  await broker?.stop();
  await artifacts?.close();
  pki?.remove();
  rmSync(manifests, { recursive: true, force: true });
  rmSync(secrets, { recursive: true, force: true });
});

const row = (key: string) => page.locator(`tr[data-key="${key}"]`);
const field = (key: string, name: string) => row(key).locator(`[data-field="${name}"]`);
const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });

test('the page and its assets are the agent’s own and small; the live feed needs the token like the API', async () => {
  const sizes = consoleSizes();
  const total = Object.values(sizes).reduce((sum, size) => sum + size, 0);
  assert.ok(total <= 150 * 1024, `console is ${total} bytes gzipped: ${JSON.stringify(sizes)}`);
  const base = `http://${agent.adminAddr}`;
  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  const html = await page.text();
  // Nothing from elsewhere: every script, stylesheet and fetch is the agent's.
  assert.doesNotMatch(html, /(src|href)="(https?:)?\/\//);
  assert.match(page.headers.get('content-security-policy') ?? '', /script-src 'self'/);
  assert.equal((await fetch(`${base}/console/events`)).status, 401);
  assert.equal((await fetch(`${base}/console/events`, { headers: { authorization: 'Bearer not-the-token-at-all' } })).status, 401);
  assert.equal((await fetch(`${base}/api/v1/resources`)).status, 401, 'the API itself still needs the token');
});

test('without a token the page asks for one; a wrong one is refused; the right one opens the live feed', async () => {
  const requests: string[] = [];
  page.on('request', (request) => requests.push(request.url()));
  await page.goto(`http://${agent.adminAddr}/`);
  await page.locator('#login').waitFor({ state: 'visible', timeout: 10_000 });
  await shot('1-token-form');
  await page.fill('#token', 'wrong-token-0123456789');
  await page.click('#login button');
  await page.locator('#login-message', { hasText: 'not accepted' }).waitFor({ timeout: 10_000 });
  await page.fill('#token', TOKEN);
  await page.click('#login button');
  await page.locator('#link[data-state="live"]').waitFor({ timeout: 10_000 });
  // The token travels in a header only: never in an address the browser asked for.
  assert.ok(requests.every((url) => !url.includes(TOKEN)), requests.join('\n'));
  assert.ok(requests.every((url) => url.startsWith(`http://${agent.adminAddr}/`) || url.startsWith('data:')), `only the agent was asked: ${requests.join('\n')}`);
});

test('every resource renders by kind, with the agent overview and the broken Sensor’s reason as text', async () => {
  await field('Sensor/default/temp-a', 'ready').filter({ hasText: 'Ready' }).waitFor({ timeout: 10_000 });
  await field('Sink/default/plant-mqtt', 'connection').filter({ hasText: /^Connected$/ }).waitFor({ timeout: 10_000 });
  assert.equal(await page.locator('#agent [data-field="device"]').textContent(), 'gw-console');
  assert.equal(await page.locator('#agent [data-field="ready"]').textContent(), 'yes');
  assert.match((await page.locator('#agent [data-field="build"]').textContent()) ?? '', /^\d+\.\d+\.\d+/);
  assert.equal(await page.locator('#kind-Sensor tbody tr').count(), 3);
  assert.equal(await page.locator('#kind-Sink tbody tr').count(), 1);
  const broken = 'Sensor/default/bad-interval';
  assert.equal(await field(broken, 'ready').textContent(), 'Not ready');
  assert.equal(await field(broken, 'reason').textContent(), 'InvalidSpec');
  // The author's string is shown as they wrote it, and nothing in it ran.
  assert.ok(((await field(broken, 'conditions').textContent()) ?? '').includes(INJECTION));
  assert.equal(await page.evaluate(() => (window as unknown as { __injected?: number }).__injected), undefined);
  assert.equal(await page.locator('main img').count(), 0, 'no element was made from a manifest string');
  await shot('2-resources');
});

test('a Certificate shows the time left before notAfter; a Firmware its phase and download progress', async () => {
  const certificate = 'Certificate/default/device-identity';
  await field(certificate, 'ready').filter({ hasText: 'Ready' }).waitFor({ timeout: 10_000 });
  assert.match((await field(certificate, 'time-left').textContent()) ?? '', /^30d [01]h$/);
  const firmware = 'Firmware/default/modem';
  await field(firmware, 'phase').filter({ hasText: 'Downloading' }).waitFor({ timeout: 10_000 });
  const progress = field(firmware, 'progress').locator('progress');
  await page.waitForFunction((selector) => Number(document.querySelector<HTMLProgressElement>(selector)?.value ?? 0) > 0, `tr[data-key="${firmware}"] [data-field="progress"] progress`, {
    timeout: 10_000,
  });
  assert.equal(Number(await progress.getAttribute('max')), ARTIFACT_SIZE);
  const before = Number(await progress.getAttribute('value'));
  assert.ok(before > 0 && before < ARTIFACT_SIZE, `${before} of ${ARTIFACT_SIZE} bytes`);
  await shot('3-certificate-and-firmware');
});

test('values, rates and sparklines move live, at most once a second', async () => {
  const key = 'Sensor/default/temp-a';
  const first = await field(key, 'value').textContent();
  const points = () => page.evaluate((selector) => document.querySelectorAll(`${selector} canvas`).length, `tr[data-key="${key}"] [data-field="sparkline"]`);
  assert.equal(await points(), 1, 'a sparkline canvas');
  // Count the updates the page receives over 3 s: the feed sends at most one a second.
  await page.waitForFunction(
    ([selector, before]) => document.querySelector(selector)?.textContent !== before,
    [`tr[data-key="${key}"] [data-field="value"]`, first] as const,
    { timeout: 5000 },
  );
  const rate = Number(((await field(key, 'rate').textContent()) ?? '').replace('/s', ''));
  assert.ok(rate >= 3 && rate <= 6, `temp-a reads every 200 ms (5/s); the page says ${rate}/s`);
  const delivered = Number(((await field('Sink/default/plant-mqtt', 'delivered').textContent()) ?? '').replace('/s', ''));
  assert.ok(delivered > 0, `the Sink delivers (page says ${delivered}/s)`);
  const updates = await page.evaluate(async () => {
    const value = document.querySelector('tr[data-key="Sensor/default/temp-a"] [data-field="value"]')!;
    let changes = 0;
    const observer = new MutationObserver(() => changes++);
    observer.observe(value.closest('tr')!, { childList: true });
    await new Promise((resolve) => setTimeout(resolve, 3000));
    observer.disconnect();
    return changes;
  });
  assert.ok(updates >= 2 && updates <= 4, `${updates} row updates in 3 s (one a second expected)`);
  await shot('4-live-values');
});

test('stopping the broker turns the Sink disconnected on the page within 2 s', async () => {
  const key = 'Sink/default/plant-mqtt';
  await field(key, 'connection').filter({ hasText: /^Connected$/ }).waitFor({ timeout: 10_000 });
  const stopped = Date.now();
  await broker.stop();
  await field(key, 'connection').filter({ hasText: 'Disconnected' }).waitFor({ timeout: 2000 });
  const elapsed = Date.now() - stopped;
  assert.ok(elapsed <= 2000, `${elapsed} ms`);
  // The queue grows while nobody takes it, and the page shows it.
  await page.waitForFunction((selector) => Number(document.querySelector(selector)?.textContent ?? 0) > 0, `tr[data-key="${key}"] [data-field="queued"]`, { timeout: 5000 });
  await shot('5-sink-disconnected');
});

test('a broken manifest written while the page is open shows up with its reason', async () => {
  writeFileSync(
    path.join(manifests, 'late.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: late-sink }
spec:
  selector: {}
  mqtt: { url: "ftp://${INJECTION}", topic: "x" }
---
apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: "${INJECTION}" }
spec: { driver: { simulated: {} }, interval: 1s }
---
apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { labels: { note: "${INJECTION}" } }
spec: { driver: { simulated: {} }, interval: 1s }
`,
  );
  const key = 'Sink/default/late-sink';
  await field(key, 'reason').filter({ hasText: 'InvalidSpec' }).waitFor({ timeout: 10_000 });
  assert.equal(await field(key, 'ready').textContent(), 'Not ready');
  assert.match((await field(key, 'conditions').textContent()) ?? '', /spec\.mqtt\.url/);
  // A name that is not a Kubernetes name: a resource of its own, refused with the reason.
  assert.ok(((await field(`Sensor/default/${INJECTION}`, 'conditions').textContent()) ?? '').includes('metadata.name'));
  // A document the agent cannot take as a resource at all (no name) is listed with its file and reason.
  const orphan = page.locator('#errors [data-field="manifest-error"]');
  await orphan.first().waitFor({ timeout: 10_000 });
  assert.match((await orphan.first().textContent()) ?? '', /late\.yaml.*metadata\.name/);
  assert.equal(await page.evaluate(() => (window as unknown as { __injected?: number }).__injected), undefined);
  assert.equal(await page.locator('main img').count(), 0);
  await shot('6-broken-manifest');
});
