import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { IncomingMessage } from 'node:http';
import { isLoopbackAddress, isLoopbackHost, parseTokenFile, tokenFileAuthenticator } from './auth.js';

test('loopback is all of 127.0.0.0/8 and ::1; the any addresses and everything else are not', async () => {
  for (const address of ['127.0.0.1', '127.0.0.2', '127.255.255.254', '::1', '[::1]', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1']) assert.equal(isLoopbackAddress(address), true, address);
  for (const address of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '::ffff:10.0.0.1', 'fe80::1', 'localhost']) assert.equal(isLoopbackAddress(address), false, address);
  assert.equal(await isLoopbackHost('localhost'), true, 'localhost resolves to loopback here');
  assert.equal(await isLoopbackHost('0.0.0.0'), false);
  assert.equal(await isLoopbackHost('no-such-host.invalid'), false, 'a name that does not resolve is not loopback');
});

test('a token file holds one token per line (two during a rotation), each at least 16 characters', () => {
  assert.deepEqual(parseTokenFile('\n  aaaaaaaaaaaaaaaa \nbbbbbbbbbbbbbbbbbbbb\n', 'f'), ['aaaaaaaaaaaaaaaa', 'bbbbbbbbbbbbbbbbbbbb']);
  assert.throws(() => parseTokenFile('\n\n', 'f'), /holds no token/);
  assert.throws(() => parseTokenFile('short\n', 'f'), /at least 16 characters/);
});

test('the token file authenticator accepts any of its tokens, only as a Bearer token, and denies all when the file goes', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-token-'));
  try {
    const file = path.join(dir, 'token');
    writeFileSync(file, 'old-token-0123456789\nnew-token-0123456789\n');
    const problems: string[] = [];
    const auth = await tokenFileAuthenticator(file, (message) => problems.push(message));
    const request = (authorization?: string) => ({ headers: authorization ? { authorization } : {}, url: '/metrics', method: 'GET' }) as IncomingMessage;
    assert.deepEqual(await auth.check(request('Bearer new-token-0123456789')), { allowed: true });
    assert.deepEqual(await auth.check(request('bearer old-token-0123456789')), { allowed: true });
    assert.equal((await auth.check(request('Bearer new-token-012345678'))).allowed, false);
    assert.equal((await auth.check(request('new-token-0123456789'))).allowed, false);
    assert.equal((await auth.check(request())).allowed, false);
    rmSync(file);
    await auth.refresh();
    assert.equal((await auth.check(request('Bearer new-token-0123456789'))).allowed, false, 'fails closed');
    assert.match(problems[0], /cannot be read \(ENOENT\)/);
    assert.ok(!problems.join('').includes('token-0123'), 'problems never quote a token');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
