// Decodes CBOR with Debian's python3-cbor2: an implementation independent of the encoder under
// test (cborg). CBOR maps come back as JS Maps, keyed as encoded (SenML uses integer labels).
import { spawnSync } from 'node:child_process';

const PYTHON = '/usr/bin/python3';
const SCRIPT = `
import sys, json, cbor2
def plain(value):
    if isinstance(value, dict):
        return {"__map__": [[plain(k), plain(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value
print(json.dumps(plain(cbor2.loads(sys.stdin.buffer.read()))))
`;

function revive(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(revive);
  if (value && typeof value === 'object' && '__map__' in value) {
    return new Map((value as { __map__: [unknown, unknown][] }).__map__.map(([key, item]) => [revive(key), revive(item)]));
  }
  return value;
}

export function decodeCborIndependently(bytes: Uint8Array): unknown {
  const result = spawnSync(PYTHON, ['-c', SCRIPT], { input: bytes, encoding: 'utf8' });
  if (result.status !== 0) {
    throw new Error(`python3-cbor2 could not decode (install it: test/install-peers.sh): ${result.stderr || result.error}`);
  }
  return revive(JSON.parse(result.stdout));
}
