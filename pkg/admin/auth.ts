// Who may use the admin API. On loopback it answers anyone on the device (the default). Anywhere
// else every endpoint but /healthz and /readyz (the kubelet's probes, which carry no credentials
// and reveal nothing) needs `Authorization: Bearer <token>`: a token from the operator's token file,
// or, in cluster mode, a token the API server's TokenReview authenticates. The agent refuses to
// start on a non-loopback address with neither, unless the operator opts out explicitly.
import { createHash, timingSafeEqual } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { readFile, stat } from 'node:fs/promises';
import net from 'node:net';
import type { IncomingMessage } from 'node:http';
import { FlagError, SensorletError } from '../api/errors.js';

/** The outcome of checking one request. */
export type AuthResult = { allowed: true } | { allowed: false; status: 401 | 403; message: string };

export interface Authenticator {
  /** Checks the request's credentials; never throws. */
  check(request: IncomingMessage): Promise<AuthResult>;
  /** SIGHUP / POST /reload: re-read what may have changed (the token file). */
  refresh(): Promise<void>;
}

const LOOPBACK = new net.BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** The whole of 127.0.0.0/8 and ::1 (IPv4-mapped too): nothing off the device reaches them. */
export function isLoopbackAddress(address: string): boolean {
  const ip = address.replace(/^\[(.*)\]$/, '$1');
  const family = net.isIP(ip);
  return family !== 0 && LOOPBACK.check(ip, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Whether HOST names only loopback addresses. A name is resolved: `localhost` is loopback where the
 * system says so, and a name that resolves to any other address is not.
 */
export async function isLoopbackHost(host: string): Promise<boolean> {
  if (net.isIP(host.replace(/^\[(.*)\]$/, '$1'))) return isLoopbackAddress(host);
  try {
    const addresses = await lookup(host, { all: true });
    return addresses.length > 0 && addresses.every(({ address }) => isLoopbackAddress(address));
  } catch {
    return false;
  }
}

const MIN_TOKEN_LENGTH = 16;
/** How often a request may look at the token file's metadata to pick up a rotated token. */
const TOKEN_FILE_CHECK_MS = 1000;

const digest = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

/** The bearer token of a request, or undefined. */
export function bearerToken(request: IncomingMessage): string | undefined {
  const header = request.headers.authorization;
  const match = header ? /^Bearer[ ]+(\S+)\s*$/i.exec(header) : null;
  return match?.[1];
}

/** Parses a token file: one token per line (two during a rotation), blank lines ignored. */
export function parseTokenFile(text: string, file: string): string[] {
  const tokens = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line.length > 0);
  if (tokens.length === 0) throw new SensorletError('AdminTokenInvalid', `the admin token file ${file} holds no token`);
  if (tokens.some((token) => token.length < MIN_TOKEN_LENGTH || /\s/.test(token))) {
    throw new SensorletError('AdminTokenInvalid', `every token in the admin token file ${file} must be at least ${MIN_TOKEN_LENGTH} characters without spaces`);
  }
  return tokens;
}

/**
 * Tokens from an operator's file. Only their SHA-256 digests are kept, and a presented token is
 * compared with every one of them in constant time. A rotated file (a Kubernetes Secret volume
 * swaps it atomically) is picked up within a second, or at once on SIGHUP; a file that becomes
 * unreadable or empty denies everything until it is fixed, rather than keep a token the operator
 * meant to withdraw.
 */
export async function tokenFileAuthenticator(file: string, onProblem: (message: string) => void): Promise<Authenticator> {
  let digests: Buffer[] = [];
  let signature = '';
  let checkedAt = 0;
  let problem: string | undefined;

  /** Reads the file when its metadata changed, or always when forced (SIGHUP). */
  const load = async (force: boolean): Promise<void> => {
    const info = await stat(file);
    const next = `${info.ino}:${info.size}:${info.mtimeMs}`;
    if (!force && next === signature && problem === undefined) return;
    digests = parseTokenFile(await readFile(file, 'utf8'), file).map(digest);
    signature = next;
    problem = undefined;
  };
  const reload = async (force: boolean): Promise<void> => {
    checkedAt = Date.now();
    try {
      await load(force);
    } catch (error) {
      const message = error instanceof SensorletError ? error.message : `the admin token file ${file} cannot be read (${(error as NodeJS.ErrnoException).code})`;
      if (message !== problem) onProblem(`${message}; the admin API refuses every token until it is fixed`);
      problem = message;
      digests = [];
      signature = '';
    }
  };

  // At start a missing or empty file is the operator's mistake to hear about at once.
  try {
    await load(true);
  } catch (error) {
    if (error instanceof SensorletError) throw new FlagError('--admin-token-file', error.code, `${error.message} (--admin-token-file)`);
    throw new FlagError('--admin-token-file', 'AdminTokenInvalid', `the admin token file ${file} cannot be read (${(error as NodeJS.ErrnoException).code}) (--admin-token-file)`);
  }
  checkedAt = Date.now();

  /** Whether the token is one of the file's: compared with every one, each in constant time. */
  const matches = async (token: string): Promise<boolean> => {
    if (Date.now() - checkedAt >= TOKEN_FILE_CHECK_MS) await reload(false);
    const presented = digest(token);
    let found = false;
    for (const expected of digests) found = timingSafeEqual(presented, expected) || found;
    return found;
  };
  return {
    async check(request) {
      const token = bearerToken(request);
      if (token === undefined) return { allowed: false, status: 401, message: 'this admin API needs Authorization: Bearer <token>' };
      return (await matches(token)) ? { allowed: true } : { allowed: false, status: 401, message: 'the bearer token was not accepted' };
    },
    refresh: () => reload(true),
  };
}

/** The first authenticator that allows a request wins; otherwise the last refusal is the answer. */
export function anyOf(authenticators: Authenticator[]): Authenticator {
  return {
    async check(request) {
      let result: AuthResult = { allowed: false, status: 401, message: 'this admin API needs Authorization: Bearer <token>' };
      for (const authenticator of authenticators) {
        result = await authenticator.check(request);
        if (result.allowed) return result;
      }
      return result;
    },
    async refresh() {
      await Promise.all(authenticators.map((authenticator) => authenticator.refresh()));
    },
  };
}
