// Broker credentials from usernameFrom / passwordFrom against a real Mosquitto that demands them
// (password_file, no anonymous clients). The password connects, and is found in no channel the
// agent speaks through: its logs, status (admin API and the state dir), `get -o yaml`, /metrics.
// A password written into the URL is refused, and not echoed either; a password file outside the
// operator's --credentials-dir is never read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { AgentProcess, CLI } from '../support/agent.js';

const USER = 'gateway-7';

function sensor(): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: boiler, labels: { site: plant-1 } }
spec:
  driver: { simulated: { waveform: counter } }
  interval: 100ms
`;
}

function sink(name: string, mqtt: string): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: ${name} }
spec:
  selector: { matchLabels: { site: plant-1 } }
  mqtt:
${mqtt}
    qos: 1
    topic: "creds/${name}/{sensor}"
  batch: { maxReadings: 20, maxDelay: 50ms }
`;
}

/** Every file under the state dir, as text (status.json among them). */
function stateText(dir: string): string {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && /\.json$/.test(entry.name))
    .map((entry) => readFileSync(path.join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name), 'utf8'))
    .join('\n');
}

test('a broker password from passwordFrom connects to a Mosquitto that requires it, and appears in no output', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-creds-'));
  const password = `pw-${randomBytes(12).toString('hex')}`;
  const urlPassword = `urlpw-${randomBytes(12).toString('hex')}`;
  const outsidePassword = `outside-${randomBytes(12).toString('hex')}`;
  const passwordFile = path.join(dir, 'mosquitto.passwd');
  writeFileSync(passwordFile, '');
  execFileSync('mosquitto_passwd', ['-b', passwordFile, USER, password]);
  const broker = await Mosquitto.start({
    config: (port) => [`user root`, `listener ${port} 127.0.0.1`, `allow_anonymous false`, `password_file ${passwordFile}`].join('\n'),
  });
  const credentials = path.join(dir, 'credentials');
  mkdirSync(credentials);
  writeFileSync(path.join(credentials, 'mqtt-password'), `${password}\n`, { mode: 0o600 });
  writeFileSync(path.join(dir, 'outside-password'), `${outsidePassword}\n`);
  const manifests = path.join(dir, 'manifests');
  mkdirSync(manifests);
  writeFileSync(path.join(manifests, 'sensor.yaml'), sensor());
  writeFileSync(
    path.join(manifests, 'sinks.yaml'),
    [
      sink('plant', `    url: ${broker.url}\n    usernameFrom: { env: SENSORLET_SECRET_MQTT_USER }\n    passwordFrom: { file: ${path.join(credentials, 'mqtt-password')} }`),
      sink('inline', `    url: mqtt://${USER}:${urlPassword}@127.0.0.1:${broker.port}`),
      sink('outside', `    url: ${broker.url}\n    usernameFrom: { env: SENSORLET_SECRET_MQTT_USER }\n    passwordFrom: { file: ${path.join(dir, 'outside-password')} }`),
      sink('wrong', `    url: ${broker.url}\n    usernameFrom: { env: SENSORLET_SECRET_MQTT_USER }\n    passwordFrom: { env: SENSORLET_SECRET_WRONG_PASSWORD }`),
    ].join('---\n'),
  );
  const wrongPassword = `wrong-${randomBytes(12).toString('hex')}`;
  let subscriber: Subscriber | undefined;
  let agent: AgentProcess | undefined;
  try {
    subscriber = await Subscriber.connect(broker.url, 'creds/#', { username: USER, password });
    agent = await AgentProcess.start({
      manifests,
      stateDir: path.join(dir, 'state'),
      extraArgs: ['--credentials-dir', credentials],
      env: { SENSORLET_SECRET_MQTT_USER: USER, SENSORLET_SECRET_WRONG_PASSWORD: wrongPassword },
    });
    await agent.waitForCondition('Sink', 'plant', 'Connected', 'True');
    await subscriber.waitForReadings(() => subscriber!.messages.some((message) => message.topic === 'creds/plant/boiler'), 10_000, 'readings through the authenticated connection');

    const inline = await agent.waitForCondition('Sink', 'inline', 'Ready', 'False', 'InvalidSpec');
    assert.match(inline.message, /spec\.mqtt\.url: a password in the URL is refused.*passwordFrom/);
    const outside = await agent.waitForCondition('Sink', 'outside', 'Ready', 'False', 'CredentialFileNotAllowed');
    assert.match(outside.message, /--credentials-dir/);
    const wrong = await agent.waitForCondition('Sink', 'wrong', 'Connected', 'False');
    assert.match(wrong.reason, /NotAuthorized|BadCredentials/);
    assert.ok(!subscriber.messages.some((message) => /^creds\/(inline|outside|wrong)\//.test(message.topic)), 'only the Sink with its password delivered');

    const listed = await (await fetch(`http://${agent.adminAddr}/api/v1/resources`)).text();
    const plant = (await agent.resource('Sink', 'plant'))!;
    assert.equal(plant.status.nodes[0].url, broker.url);
    const inlineSpec = (await agent.resource('Sink', 'inline'))!.spec;
    assert.equal(inlineSpec.mqtt.url, `mqtt://${USER}:***@127.0.0.1:${broker.port}`, 'the URL is shown with its password masked');
    const yaml = spawnSync(process.execPath, [CLI, 'get', 'sinks', '-o', 'yaml', '--admin-addr', agent.adminAddr], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(yaml.status, 0, yaml.stderr);
    assert.match(yaml.stdout, /passwordFrom/);
    const wide = spawnSync(process.execPath, [CLI, 'get', 'sinks', '-o', 'wide', '--admin-addr', agent.adminAddr], { encoding: 'utf8', timeout: 15_000 });
    const metrics = await agent.metrics();
    await new Promise((resolve) => setTimeout(resolve, 1200)); // the status file is written once a second
    const channels = {
      logs: agent.stdout + agent.stderr,
      'admin API': listed,
      'get -o yaml': yaml.stdout + yaml.stderr,
      'get -o wide': wide.stdout + wide.stderr,
      metrics,
      'state dir': stateText(agent!.stateDir),
    };
    for (const [channel, text] of Object.entries(channels)) {
      for (const [secret, value] of Object.entries({ password, urlPassword, outsidePassword, wrongPassword })) {
        assert.ok(!text.includes(value), `the ${secret} appears in ${channel}`);
      }
    }
  } finally {
    await agent?.kill();
    await subscriber?.close();
    await broker.stop();
    rmSync(broker.dir, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});
