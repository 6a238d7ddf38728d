// `sensorlet firmware statement` and `sensorlet firmware sign`: the operator's side of Firmware
// signatures (pkg/ota/statement.ts). Both read a Firmware manifest (version, target, install and
// rollback argv) and the artifact file (SHA-256 and size):
//   statement → prints the canonical statement bytes, for signing elsewhere (openssl, an HSM);
//   sign      → signs it with a private key and prints the manifest with spec.artifact.sha256, size
//               and signature { keyRef, algorithm, statement, value } filled in.
import { createHash, createPrivateKey } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import yaml from 'js-yaml';
import type { FirmwareSpec } from '../../pkg/api/resource.js';
import { encodeStatement, signStatement, statementOf } from '../../pkg/ota/statement.js';
import { KEY_NAME } from '../../pkg/ota/trust.js';

interface FirmwareDocument {
  kind?: string;
  metadata?: { name?: string };
  spec?: FirmwareSpec;
}

async function digestOf(file: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return { sha256: hash.digest('hex'), size: statSync(file).size };
}

function firmwareDocuments(manifest: string): { docs: unknown[]; firmware: FirmwareDocument[] } {
  const docs = yaml.loadAll(readFileSync(manifest, 'utf8')).filter((doc) => doc !== null && doc !== undefined);
  const firmware = docs.filter((doc): doc is FirmwareDocument => (doc as FirmwareDocument).kind === 'Firmware');
  for (const doc of firmware) {
    const spec = doc.spec;
    if (!spec?.version || !spec.target) throw new Error(`${manifest}: Firmware/${doc.metadata?.name ?? '?'}: spec.version and spec.target are required to sign`);
  }
  if (firmware.length === 0) throw new Error(`${manifest}: no Firmware in it`);
  return { docs, firmware };
}

export async function statementCommand(manifest: string, options: { artifact: string }): Promise<number> {
  try {
    const { firmware } = firmwareDocuments(manifest);
    if (firmware.length !== 1) throw new Error(`${manifest}: ${firmware.length} Firmware resources; give a file with one`);
    process.stdout.write(encodeStatement(statementOf(firmware[0].spec!, await digestOf(options.artifact))));
    return 0;
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n`);
    return 1;
  }
}

export async function signCommand(manifest: string, options: { artifact: string; key: string; keyName?: string }): Promise<number> {
  try {
    const privateKey = createPrivateKey(readFileSync(options.key));
    const digest = await digestOf(options.artifact);
    const { docs, firmware } = firmwareDocuments(manifest);
    for (const doc of firmware) {
      const spec = doc.spec!;
      const keyName = options.keyName ?? (spec.artifact?.signature as { keyRef?: { name?: string } } | undefined)?.keyRef?.name;
      if (!keyName || !KEY_NAME.test(keyName)) {
        throw new Error(`Firmware/${doc.metadata?.name ?? '?'}: give --key-name NAME (the key's name in the agents' trust store: letters, digits, '.', '_', '-')`);
      }
      const bytes = encodeStatement(statementOf(spec, digest));
      const { algorithm, value } = signStatement(bytes, privateKey);
      spec.artifact = {
        ...spec.artifact,
        sha256: digest.sha256,
        size: digest.size,
        signature: { keyRef: { name: keyName }, algorithm, statement: bytes.toString('base64'), value },
      };
    }
    process.stdout.write(docs.map((doc) => yaml.dump(doc, { noRefs: true, lineWidth: -1 })).join('---\n'));
    return 0;
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n`);
    return 1;
  }
}
