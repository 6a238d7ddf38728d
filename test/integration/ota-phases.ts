// Shared by the OTA kill -9 tests (ota-command.test.ts, ota-agent.test.ts): what status showed
// after a restart, and waits whose timeout says what was seen at the deadline.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AgentProcess, ListedResource } from '../support/agent.js';
import { waitFor } from '../support/ports.js';

/**
 * The Firmware's status entry, read over a connection of its own (`Connection: close`). Not
 * fetch(): it keeps connections alive, and Node's http server.close() (the admin API, in the
 * agent's stop()) waits for a keep-alive connection that was busy when it was called while the
 * client goes on reusing it, so polling faster than the keep-alive timeout can hold a
 * self-updating agent's restart (stop(), then exit 75) open indefinitely.
 */
export async function firmwareStatus(agent: AgentProcess, name: string): Promise<ListedResource['status']['nodes'][number] | undefined> {
  const list = (await adminJson(agent.adminAddr, '/api/v1/resources')) as { items: ListedResource[] };
  return list.items.find((item) => item.kind === 'Firmware' && item.metadata.name === name)?.status.nodes[0];
}

function adminJson(adminAddr: string, urlPath: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const request = http.get(`http://${adminAddr}${urlPath}`, { agent: false, headers: { connection: 'close' }, timeout: 5000 }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        if (response.statusCode !== 200) return reject(new Error(`GET ${urlPath}: HTTP ${response.statusCode}: ${body.slice(0, 200)}`));
        try {
          resolve(JSON.parse(body));
        } catch (error) {
          reject(error);
        }
      });
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`GET ${urlPath}: no answer in 5 s`)));
    request.on('error', reject);
  });
}

/** waitFor whose timeout message says what `now()` shows at the deadline (not at the start of the wait). */
export async function waitSeen<T>(probe: () => Promise<T | undefined | false>, what: string, now: () => unknown, timeoutMs = 10_000): Promise<T> {
  try {
    return await waitFor(probe, { timeoutMs, what });
  } catch (error) {
    const seen = await Promise.resolve().then(now).catch((cause: Error) => cause.message);
    throw new Error(`${(error as Error).message}; at the deadline: ${JSON.stringify(seen)}`);
  }
}

const watchers = new Set<{ stop(): Promise<string[]> }>();

/**
 * Records every phase the status shows, in order, polled every 20 ms (a failed poll, e.g. while a
 * self-updating agent restarts, is skipped): what an operator watching status would have seen.
 * Stop it with stop(), or stopWatchers() after each test, so a failed assertion cannot leave it
 * polling.
 */
export function watchPhases(phase: () => Promise<string | undefined>) {
  const seen: string[] = [];
  let stopped = false;
  const poll = async () => {
    const now = await phase().catch(() => undefined);
    if (now && seen.at(-1) !== now) seen.push(now);
  };
  const loop = (async () => {
    while (!stopped) {
      await poll();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  const watcher = {
    /** Ends the watch with one last poll, so it includes what the caller's own wait just saw. */
    async stop(): Promise<string[]> {
      stopped = true;
      watchers.delete(watcher);
      await loop;
      await poll();
      return seen;
    },
  };
  watchers.add(watcher);
  return watcher;
}

export async function stopWatchers(): Promise<void> {
  for (const watcher of [...watchers]) await watcher.stop();
}

/**
 * The phases status showed after a restart: in the order of `path` (which starts at the phase the
 * crash left), none before it or off it, ending at its last. The first one seen may be past
 * path[0] already: a short phase can end before the first poll.
 */
export function assertPhases(seen: string[], path: string[]): void {
  assert.ok(seen.length > 0, 'status showed a phase after the restart');
  let at = 0;
  for (const phase of seen) {
    const index = path.indexOf(phase, at);
    assert.ok(index >= 0, `phase ${phase} is not on the path ${path.join(' → ')} at or after ${path[at]} (seen: ${seen.join(' → ')})`);
    at = index;
  }
  assert.equal(seen.at(-1), path.at(-1), `seen: ${seen.join(' → ')}`);
}
