import type { Platform } from './platforms.js';
export async function buildPackages(_platforms: Platform[], _out: string): Promise<string[]> { throw new Error('todo'); }
export function writeRootfs(_platform: Platform, _out: string): void { throw new Error('todo'); }
