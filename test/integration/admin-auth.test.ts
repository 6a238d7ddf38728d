// The admin API off loopback: the real CLI bound to every address (0.0.0.0, and the IPv6 any
// address), reached through 127.0.0.1 as another machine would reach the pod IP. Without the
// operator's token it answers only /healthz and /readyz; it refuses to start open to the network
// unless the operator opts out explicitly; `sensorlet get --token-file` reads it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AGENT_NODE_FLAGS, AgentProcess, CLI } from '../support/agent.js';
import { freePort, waitFor } from '../support/ports.js';
import { metricValue } from '../bench/harness.js';

const SENSOR = `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: boiler }
spec:
  driver: { simulated: { waveform: counter } }
  interval: 1s
`;

function workspace(): { dir: string; manifests: string; stateDir: string; tokenFile: string; token: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-admin-auth-'));
  const manifests = path.join(dir, 'manifests');
  mkdirSync(manifests);
  writeFileSync(path.join(manifests, 'sensor.yaml'), SENSOR);
  const token = randomBytes(24).toString('base64url');
  const tokenFile = path.join(dir, 'admin-token');
  writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
  return { dir, manifests, stateDir: path.join(dir, 'state'), tokenFile, token };
}

async function status(url: string, init: RequestInit = {}): Promise<number> {
  const response = await fetch(url, init);
  await response.arrayBuffer();
  return response.status;
}

const PROTECTED: [string, string][] = [
  ['GET', '/metrics'],
  ['GET', '/api/v1/resources'],
  ['POST', '/reload'],
  ['GET', '/no-such-endpoint'],
];

for (const host of ['0.0.0.0', '::']) {
  test(`bound to ${host}: 401 without the token on everything but /healthz and /readyz, 200 with it`, async () => {
    const { dir, manifests, stateDir, tokenFile, token } = workspace();
    const agent = await AgentProcess.start({ manifests, stateDir, adminHost: host, adminToken: token, extraArgs: ['--admin-token-file', tokenFile] });
    try {
      const base = `http://${agent.adminAddr}`;
      assert.equal(await status(`${base}/healthz`), 200);
      assert.equal(await status(`${base}/readyz`), 200);
      for (const [method, urlPath] of PROTECTED) {
        assert.equal(await status(`${base}${urlPath}`, { method }), 401, `${method} ${urlPath} without a token`);
        assert.equal(await status(`${base}${urlPath}`, { method, headers: { authorization: `Bearer ${token}x` } }), 401, `${method} ${urlPath} with a wrong token`);
        assert.equal(await status(`${base}${urlPath}`, { method, headers: { authorization: `Basic ${Buffer.from(`u:${token}`).toString('base64')}` } }), 401, `${method} ${urlPath} with Basic`);
      }
      const unauthenticated = await fetch(`${base}/api/v1/resources`);
      assert.match(unauthenticated.headers.get('www-authenticate') ?? '', /^Bearer/);
      assert.doesNotMatch(await unauthenticated.text(), /boiler/, 'a 401 reveals nothing');
      const bearer = { authorization: `Bearer ${token}` };
      assert.equal(await status(`${base}/metrics`, { headers: bearer }), 200);
      assert.equal(await status(`${base}/reload`, { method: 'POST', headers: bearer }), 200);
      assert.equal(await status(`${base}/no-such-endpoint`, { headers: bearer }), 404);
      await agent.waitForCondition('Sensor', 'boiler', 'Ready', 'True');
      assert.ok(metricValue(await agent.metrics(), 'sensorlet_admin_denied_total', 'status="401"') >= PROTECTED.length * 3, 'refusals are counted');
      assert.doesNotMatch(agent.stdout + agent.stderr, new RegExp(token), 'the token is never logged');
    } finally {
      await agent.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('sensorlet get --token-file reads a token-protected agent; without it, a one-line refusal naming the flag', async () => {
  const { dir, manifests, stateDir, tokenFile, token } = workspace();
  const agent = await AgentProcess.start({ manifests, stateDir, adminHost: '0.0.0.0', adminToken: token, extraArgs: ['--admin-token-file', tokenFile] });
  try {
    await agent.waitForCondition('Sensor', 'boiler', 'Ready', 'True');
    const get = (...args: string[]) => spawnSync(process.execPath, [CLI, 'get', 'sensors', '--admin-addr', agent.adminAddr, ...args], { encoding: 'utf8', timeout: 15_000 });
    const allowed = get('--token-file', tokenFile);
    assert.equal(allowed.status, 0, allowed.stderr);
    assert.match(allowed.stdout, /boiler/);
    const refused = get();
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /401.*--token-file/);
    assert.doesNotMatch(refused.stdout, /boiler/);
  } finally {
    await agent.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a rotated token file is picked up without a restart: the old token stops working, the new one works', async () => {
  const { dir, manifests, stateDir, tokenFile, token } = workspace();
  const agent = await AgentProcess.start({ manifests, stateDir, adminHost: '0.0.0.0', extraArgs: ['--admin-token-file', tokenFile] });
  try {
    const url = `http://${agent.adminAddr}/metrics`;
    assert.equal(await status(url, { headers: { authorization: `Bearer ${token}` } }), 200);
    const rotated = randomBytes(24).toString('base64url');
    // As a Kubernetes Secret volume does it: a new file swapped in atomically.
    writeFileSync(`${tokenFile}.new`, `${rotated}\n`);
    renameSync(`${tokenFile}.new`, tokenFile);
    await waitFor(async () => (await status(url, { headers: { authorization: `Bearer ${rotated}` } })) === 200, { timeoutMs: 5000, what: 'the new token accepted' });
    assert.equal(await status(url, { headers: { authorization: `Bearer ${token}` } }), 401, 'the old token is refused');
    // SIGHUP re-reads it at once.
    const third = randomBytes(24).toString('base64url');
    writeFileSync(tokenFile, `${third}\n`);
    agent.child.kill('SIGHUP');
    await waitFor(async () => (await status(url, { headers: { authorization: `Bearer ${third}` } })) === 200, { timeoutMs: 5000, what: 'the token re-read on SIGHUP' });
  } finally {
    await agent.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Runs `sensorlet run` expecting it to refuse to start; returns its exit code and output. */
async function runExpectingRefusal(args: string[]): Promise<{ code: number | null; stderr: string; listening: boolean }> {
  const port = await freePort();
  const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, CLI, 'run', '--admin-addr', `0.0.0.0:${port}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdout.resume();
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);
  const listening = await fetch(`http://127.0.0.1:${port}/healthz`).then(() => true, () => false);
  return { code, stderr, listening };
}

test('refuses to start on a non-loopback address with no token, naming the flag; --admin-insecure-no-auth is the explicit opt-out', async () => {
  const { dir, manifests, stateDir } = workspace();
  try {
    const refused = await runExpectingRefusal(['--manifests', manifests, '--state-dir', stateDir]);
    assert.notEqual(refused.code, 0, 'exits with an error');
    assert.equal(refused.listening, false);
    const lines = refused.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line: ${refused.stderr}`);
    assert.match(lines[0], /^error: .*0\.0\.0\.0.*not a loopback address.*--admin-token-file/);

    const missingFile = await runExpectingRefusal(['--manifests', manifests, '--state-dir', stateDir, '--admin-token-file', path.join(dir, 'absent')]);
    assert.notEqual(missingFile.code, 0);
    assert.match(missingFile.stderr.trim(), /^error: the admin token file .*absent cannot be read \(ENOENT\)/);

    const weak = path.join(dir, 'weak');
    writeFileSync(weak, 'short\n');
    const weakToken = await runExpectingRefusal(['--manifests', manifests, '--state-dir', stateDir, '--admin-token-file', weak]);
    assert.notEqual(weakToken.code, 0);
    assert.match(weakToken.stderr, /at least 16 characters/);

    const agent = await AgentProcess.start({ manifests, stateDir, adminHost: '0.0.0.0', extraArgs: ['--admin-insecure-no-auth'] });
    try {
      assert.equal(await status(`http://${agent.adminAddr}/api/v1/resources`), 200, 'the operator chose an open admin API');
      await waitFor(() => /without authentication \(--admin-insecure-no-auth\)/.test(agent.stdout + agent.stderr), { timeoutMs: 3000, what: 'a warning in the log' });
    } finally {
      await agent.kill();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A raw request with the Host header given (fetch sets its own); resolves with the status and
 * headers, or rejects when no complete answer came within 5 s.
 */
function rawRequest(address: string, method: string, pathname: string, headers: Record<string, string>, agent?: http.Agent): Promise<http.IncomingMessage> {
  const [, host, port] = /^\[?(.*?)\]?:(\d+)$/.exec(address)!;
  return new Promise((resolve, reject) => {
    const request = http.request({ host, port: Number(port), method, path: pathname, headers, agent, timeout: 5000 }, (response) => {
      if (method === 'HEAD') resolve(response);
      else response.resume().on('end', () => resolve(response));
    });
    request.on('timeout', () => request.destroy(new Error(`${method} ${pathname}: no answer within 5 s`)));
    request.on('error', reject).end();
  });
}

test('on loopback nothing is needed, as before, but only for requests addressed to loopback (DNS rebinding)', async () => {
  const { dir, manifests, stateDir } = workspace();
  const agent = await AgentProcess.start({ manifests, stateDir, adminHost: '127.0.0.1' });
  try {
    assert.equal(await status(`http://${agent.adminAddr}/api/v1/resources`), 200);
    // A page whose name was rebound to 127.0.0.1 sends its own name as Host.
    for (const [method, pathname] of [['GET', '/api/v1/resources'], ['GET', '/console/events'], ['POST', '/reload'], ['GET', '/metrics'], ['GET', '/console/']]) {
      const rebound = await rawRequest(agent.adminAddr, method, pathname, { host: 'evil.example' });
      assert.equal(rebound.statusCode, 421, `${method} ${pathname} with Host: evil.example`);
      const withPort = await rawRequest(agent.adminAddr, method, pathname, { host: `evil.example:${agent.adminAddr.split(':').at(-1)}` });
      assert.equal(withPort.statusCode, 421, `${method} ${pathname} with Host: evil.example:PORT`);
    }
    for (const host of ['localhost', `localhost:${agent.adminAddr.split(':').at(-1)}`, agent.adminAddr, '127.0.0.1', '[::1]:80']) {
      assert.equal((await rawRequest(agent.adminAddr, 'GET', '/api/v1/resources', { host })).statusCode, 200, `Host: ${host}`);
    }
    // The kubelet's probes stay open whatever they send as Host.
    assert.equal((await rawRequest(agent.adminAddr, 'GET', '/healthz', { host: 'evil.example' })).statusCode, 200);
    assert.equal((await rawRequest(agent.adminAddr, 'GET', '/readyz', { host: 'evil.example' })).statusCode, 200);
    const denied = await fetch(`http://${agent.adminAddr}/metrics`).then((response) => response.text());
    assert.equal(metricValue(denied, 'sensorlet_admin_denied_total', 'status="421"'), 10);

    // HEAD on the live feed is headers only: a dozen of them, their sockets kept open, leave the
    // feed's 8 stream slots free.
    const keepOpen = new http.Agent({ keepAlive: true, maxSockets: 16 });
    try {
      const heads = await Promise.all(Array.from({ length: 12 }, () => rawRequest(agent.adminAddr, 'HEAD', '/console/events', { host: 'localhost' }, keepOpen)));
      for (const head of heads) assert.equal(head.statusCode, 200);
      assert.match(String(heads[0].headers['content-type']), /^text\/event-stream/);
      const stream = await new Promise<http.IncomingMessage>((resolve, reject) => {
        const request = http.get(`http://${agent.adminAddr}/console/events`, { timeout: 5000 }, resolve);
        request.on('timeout', () => request.destroy(new Error('GET /console/events: no answer within 5 s'))).on('error', reject);
      });
      assert.equal(stream.statusCode, 200, 'a stream slot is free after the HEAD requests');
      stream.destroy();
    } finally {
      keepOpen.destroy();
    }
  } finally {
    await agent.kill();
    rmSync(dir, { recursive: true, force: true });
  }
});
