// `sensorlet run` with the ordinary mistakes a new user makes: each is one line on stderr that names
// the flag, exit status 2, and never a stack trace; nothing listens and nothing is left behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AGENT_NODE_FLAGS, CLI } from '../support/agent.js';
import { freePort } from '../support/ports.js';

/** Runs `sensorlet run ARGS` to its end (at most 15 s); its exit status and stderr. */
async function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, CLI, 'run', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);
  return { code, stderr };
}

test('ordinary mistakes: one line naming the flag, exit 2, no stack trace', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-usage-'));
  const manifests = path.join(dir, 'manifests');
  mkdirSync(manifests);
  writeFileSync(path.join(dir, 'a-file'), '');
  // Another program (a first agent, say) holds this port.
  const taken = net.createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  const takenAddr = `127.0.0.1:${(taken.address() as net.AddressInfo).port}`;
  const free = `127.0.0.1:${await freePort()}`;
  const state = (name: string) => ['--state-dir', path.join(dir, `state-${name}`)];
  const cases: { name: string; args: string[]; flag: RegExp }[] = [
    { name: 'missing manifests folder', args: ['--manifests', path.join(dir, 'nowhere'), ...state('a'), '--admin-addr', free], flag: /^error: --manifests .*nowhere: no such folder$/ },
    { name: 'manifests is a file', args: ['--manifests', path.join(dir, 'a-file'), ...state('b'), '--admin-addr', free], flag: /^error: --manifests .*a-file: not a folder/ },
    { name: 'admin port in use', args: ['--manifests', manifests, ...state('c'), '--admin-addr', takenAddr], flag: /^error: --admin-addr 127\.0\.0\.1:\d+: the address is already in use/ },
    { name: 'admin address malformed', args: ['--manifests', manifests, ...state('d'), '--admin-addr', 'localhost'], flag: /^error: --admin-addr "localhost": expected HOST:PORT/ },
    { name: 'admin port out of range', args: ['--manifests', manifests, ...state('e'), '--admin-addr', '127.0.0.1:99999'], flag: /^error: --admin-addr "127\.0\.0\.1:99999": expected HOST:PORT/ },
    { name: 'admin address not on this machine', args: ['--manifests', manifests, ...state('f'), '--admin-addr', '192.0.2.1:9470', '--admin-insecure-no-auth'], flag: /^error: --admin-addr 192\.0\.2\.1:9470: no network interface/ },
    { name: 'log level', args: ['--manifests', manifests, ...state('g'), '--admin-addr', free, '--log-level', 'loud'], flag: /^error: --log-level "loud": expected one of/ },
    { name: 'unknown option', args: ['--manifests', manifests, ...state('h'), '--admin-addr', free, '--manifest-dir', manifests], flag: /^error: unknown option '--manifest-dir'/ },
    { name: 'no mode', args: [...state('i'), '--admin-addr', free], flag: /^error: give exactly one of --manifests DIR, --kubeconfig FILE, --in-cluster$/ },
    { name: 'missing kubeconfig', args: ['--kubeconfig', path.join(dir, 'kubeconfig'), ...state('j'), '--admin-addr', free], flag: /^error: --kubeconfig .*kubeconfig: no such file$/ },
    { name: 'bad tenant grant', args: ['--manifests', manifests, ...state('k'), '--admin-addr', free, '--tenant-grant', 'acme'], flag: /^error: --tenant-grant "acme": expected NAMESPACE=TENANT/ },
    { name: 'contradicting flags', args: ['--manifests', manifests, ...state('l'), '--admin-addr', free, '--admin-insecure-no-auth', '--admin-token-file', path.join(dir, 'a-file')], flag: /^error: --admin-insecure-no-auth contradicts/ },
  ];
  try {
    const results = await Promise.all(cases.map(async (each) => ({ each, result: await run(each.args) })));
    for (const { each, result } of results) {
      const lines = result.stderr.trimEnd().split('\n');
      assert.equal(result.code, 2, `${each.name}: exit 2 (stderr: ${result.stderr})`);
      assert.equal(lines.length, 1, `${each.name}: one line: ${result.stderr}`);
      assert.match(lines[0], each.flag, each.name);
      assert.doesNotMatch(result.stderr, /^\s+at |node:internal|\.js:\d+/m, `${each.name}: no stack trace`);
    }
  } finally {
    taken.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
