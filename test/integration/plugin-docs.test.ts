// Every driver and sink folder (pkg/drivers/*/, pkg/sinks/*/) has a README and an example, and
// every example there passes the public `sensorlet validate`; the facts the READMEs promise are there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { CLI } from '../support/agent.js';

const pluginFolders = ['drivers', 'sinks'].flatMap((area) =>
  readdirSync(path.join(PACKAGE_ROOT, 'pkg', area), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => path.join(PACKAGE_ROOT, 'pkg', area, entry.name)),
);

test('a README and an example beside every driver and sink', () => {
  assert.ok(pluginFolders.length >= 9, `found ${pluginFolders.length} plugin folders`);
  for (const folder of pluginFolders) {
    const relative = path.relative(PACKAGE_ROOT, folder);
    assert.ok(existsSync(path.join(folder, 'README.md')), `${relative}/README.md`);
    assert.ok(readFileSync(path.join(folder, 'README.md'), 'utf8').length > 300, `${relative}/README.md says something`);
    assert.ok(existsSync(path.join(folder, 'example.yaml')), `${relative}/example.yaml`);
  }
});

test('every example under pkg/*/*/ passes `sensorlet validate` and declares what its folder is about', () => {
  const examples = readdirSync(path.join(PACKAGE_ROOT, 'pkg'), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .flatMap((area) =>
      readdirSync(path.join(PACKAGE_ROOT, 'pkg', area.name), { withFileTypes: true })
        .filter((entry) => entry.isDirectory())
        .flatMap((folder) => {
          const dir = path.join(PACKAGE_ROOT, 'pkg', area.name, folder.name);
          return readdirSync(dir).filter((file) => /^example.*\.ya?ml$/.test(file)).map((file) => path.join(dir, file));
        }),
    );
  assert.ok(examples.length >= pluginFolders.length, `${examples.length} examples`);
  const result = spawnSync(process.execPath, [CLI, 'validate', ...examples], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(result.status, 0, `sensorlet validate: ${result.stdout}${result.stderr}`);
  for (const file of examples) {
    const plugin = path.basename(path.dirname(file));
    const documents = yaml.loadAll(readFileSync(file, 'utf8')) as { kind: string; spec: Record<string, any> }[];
    const area = path.basename(path.dirname(path.dirname(file)));
    if (area === 'drivers') assert.ok(documents.some((doc) => doc.kind === 'Sensor' && plugin in doc.spec.driver), `${file} has a Sensor with the ${plugin} driver`);
    if (area === 'sinks' && plugin !== 'senml') assert.ok(documents.some((doc) => doc.kind === 'Sink' && plugin in doc.spec), `${file} has a Sink with ${plugin}`);
    if (plugin === 'senml') assert.ok(documents.some((doc) => doc.kind === 'Sink' && /^senml-/.test(doc.spec.mqtt?.payload ?? doc.spec.coap?.payload)), `${file} sends SenML`);
  }
});

test('the READMEs name the real CBOR library, the serial CRC byte order and libcoap -d', () => {
  const read = (file: string) => readFileSync(path.join(PACKAGE_ROOT, 'pkg', file), 'utf8');
  const senml = read('sinks/senml/README.md');
  assert.match(senml, /cborg/);
  assert.doesNotMatch(senml, /cbor-x/);
  const dependencies = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')).dependencies;
  assert.ok('cborg' in dependencies && !('cbor-x' in dependencies), 'the library the README names is the one installed');
  assert.match(read('drivers/serial/README.md'), /crc16-modbus.*low byte first/s);
  assert.match(read('sinks/coap/README.md'), /coap-server.*`-d`/s);
});
