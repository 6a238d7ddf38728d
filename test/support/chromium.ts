// Debian's headless Chromium driven by playwright-core, for the web console's browser tests and
// its benchmark. playwright's own browser downloads cannot work here: executablePath points at
// the distribution's binary (apt-get install chromium, see test/install-peers.sh). Every launch
// gets a fresh profile folder, removed on close, and nothing reaches beyond loopback.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';

export const CHROMIUM = '/usr/bin/chromium';

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface Chromium {
  context: BrowserContext;
  /** Closes the browser and removes its profile. */
  close(): Promise<void>;
}

export async function launchChromium(): Promise<Chromium> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is not installed: run test/install-peers.sh (apt-get install chromium)`);
  const profile = mkdtempSync(path.join(tmpdir(), 'sensorlet-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1400, height: 900 } });
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Where browser tests write their screenshots: test-artifacts/ at the repository root (git-ignored; CI keeps it). */
export const ARTIFACTS_DIR = path.join(PACKAGE_ROOT, 'test-artifacts');
