// Start-up smoke test: the agent runs the quick start examples and prints readings within 5 s.
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const stateDir = mkdtempSync(path.join(tmpdir(), 'sensorlet-smoke-'));
const started = Date.now();
// Launched as `npm start` launches it (same Node flags), with this script's Node.
const child = spawn(process.execPath, ['--max-semi-space-size=1', '--max-old-space-size=512', '--v8-pool-size=2', path.join(root, 'dist/cmd/sensorlet/main.js'), 'run', '--manifests', path.join(root, 'manifests/examples/quickstart'), '--state-dir', stateDir, '--admin-addr', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
let stderr = '';
child.stderr.on('data', (chunk) => (stderr += chunk));
const timer = setTimeout(() => {
  console.error(`smoke: no reading within 5 s on ${process.version}\n${stderr}`);
  child.kill('SIGKILL');
  process.exit(1);
}, 5000);
child.stdout.setEncoding('utf8').on('data', (chunk) => {
  const line = chunk.split('\n').find((candidate) => candidate.startsWith('{'));
  if (!line) return;
  const reading = JSON.parse(line);
  if (typeof reading.seq !== 'number' || typeof reading.sensor !== 'string') return;
  clearTimeout(timer);
  console.log(`smoke: first reading after ${Date.now() - started} ms on ${process.version}: ${line}`);
  child.kill('SIGTERM');
  child.once('exit', (code) => process.exit(code === 0 ? 0 : 1));
});
