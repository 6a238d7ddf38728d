// The deployment manifests and the Helm chart: everything parses, RBAC grants exactly what the agent
// needs, the DaemonSet wires the node name, state dir and probes, and the chart's CRDs are the
// generated ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { Ajv } from 'ajv';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { buildAllCrds, KIND_NAMES } from '../../pkg/api/crds.js';
import { CLI } from '../support/agent.js';

type Doc = { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string }; [key: string]: unknown };

const MANIFESTS = path.join(PACKAGE_ROOT, 'manifests');
const DEPLOY = path.join(MANIFESTS, 'deploy');
const CHART = path.join(PACKAGE_ROOT, 'helm', 'sensorlet');

function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return yamlFiles(full);
    return /\.ya?ml$/.test(entry.name) ? [full] : [];
  });
}

function load(file: string): Doc[] {
  return yaml.loadAll(readFileSync(file, 'utf8')).filter((doc): doc is Doc => doc !== null && doc !== undefined);
}

function deployObjects(): Doc[] {
  const kustomization = load(path.join(DEPLOY, 'kustomization.yaml'))[0] as { resources: string[] };
  return kustomization.resources.flatMap((resource) => {
    const target = path.join(DEPLOY, resource);
    if (existsSync(path.join(target, 'kustomization.yaml'))) {
      const nested = load(path.join(target, 'kustomization.yaml'))[0] as { resources: string[] };
      return nested.resources.flatMap((file) => load(path.join(target, file)));
    }
    return load(target);
  });
}

const find = (docs: Doc[], kind: string, name?: string) => {
  const found = docs.filter((doc) => doc.kind === kind && (!name || doc.metadata?.name === name));
  assert.equal(found.length, 1, `exactly one ${kind}${name ? `/${name}` : ''}`);
  return found[0];
};

test('every YAML under manifests/ and helm/sensorlet/crds parses into objects with apiVersion and kind', () => {
  const files = [...yamlFiles(MANIFESTS), ...yamlFiles(path.join(CHART, 'crds'))];
  assert.ok(files.length >= 10, `found ${files.length} files`);
  for (const file of files) {
    const docs = load(file);
    assert.ok(docs.length > 0, `${file} has documents`);
    for (const doc of docs) {
      assert.equal(typeof doc.apiVersion, 'string', `${file}: apiVersion`);
      assert.equal(typeof doc.kind, 'string', `${file}: kind`);
    }
  }
});

test('the kustomization lists files that exist and includes the generated CRDs', () => {
  const objects = deployObjects();
  const crds = objects.filter((doc) => doc.kind === 'CustomResourceDefinition').map((doc) => doc.metadata?.name).sort();
  assert.deepEqual(crds, ['actuators.sensorlet.io', 'certificates.sensorlet.io', 'firmwares.sensorlet.io', 'nodereports.sensorlet.io', 'sensors.sensorlet.io', 'sinks.sensorlet.io']);
  find(objects, 'Namespace', 'sensorlet-system');
  find(objects, 'ServiceAccount', 'sensorlet');
  find(objects, 'DaemonSet', 'sensorlet');
  const clusterScoped = ['Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'];
  for (const doc of objects.filter((each) => !clusterScoped.includes(each.kind!))) {
    assert.equal(doc.metadata?.namespace, 'sensorlet-system', `${doc.kind}/${doc.metadata?.name} namespaced`);
  }
});

test('RBAC grants exactly: read the kinds, patch their status, read nodes, read secrets in the namespace', () => {
  const objects = deployObjects();
  const clusterRole = find(objects, 'ClusterRole') as { rules: unknown[] };
  assert.deepEqual(clusterRole.rules, [
    { apiGroups: ['sensorlet.io'], resources: ['sensors', 'sinks', 'certificates', 'firmwares', 'actuators'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['sensorlet.io'], resources: ['sensors/status', 'sinks/status', 'certificates/status', 'firmwares/status', 'actuators/status'], verbs: ['patch'] },
    // list+watch: the Node informer (field selector metadata.name=<node>) needs them.
    { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch'] },
  ]);
  const role = find(objects, 'Role', 'sensorlet-secrets') as { metadata: { namespace: string }; rules: unknown[] };
  assert.equal(role.metadata.namespace, 'sensorlet-system');
  // list+watch: the Secret informer needs them besides get.
  assert.deepEqual(role.rules, [{ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch'] }]);
  // The fleet status, in the agent's namespace only; no delete (a node's objects go with its Node).
  const fleet = find(objects, 'Role', 'sensorlet-fleet') as { metadata: { namespace: string }; rules: unknown[] };
  assert.equal(fleet.metadata.namespace, 'sensorlet-system');
  assert.deepEqual(fleet.rules, [
    { apiGroups: ['sensorlet.io'], resources: ['nodereports'], verbs: ['get', 'list', 'watch', 'create', 'update'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'watch', 'create', 'update'] },
  ]);
  const plurals = Object.entries(KIND_NAMES).filter(([kind]) => kind !== 'NodeReport').map(([, names]) => names.plural).sort();
  assert.deepEqual([...(clusterRole.rules[0] as { resources: string[] }).resources].sort(), plurals, 'every kind');

  for (const [bindingKind, roleKind, name] of [['ClusterRoleBinding', 'ClusterRole', 'sensorlet'], ['RoleBinding', 'Role', 'sensorlet-secrets'], ['RoleBinding', 'Role', 'sensorlet-fleet']]) {
    const binding = find(objects, bindingKind, name) as { roleRef: { kind: string; name: string }; subjects: unknown[] };
    assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: roleKind, name: find(objects, roleKind, name).metadata!.name });
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'sensorlet', namespace: 'sensorlet-system' }]);
  }
  // Nothing else grants anything.
  assert.deepEqual(objects.filter((doc) => /Role/.test(doc.kind!)).map((doc) => doc.kind).sort(), ['ClusterRole', 'ClusterRoleBinding', 'Role', 'Role', 'RoleBinding', 'RoleBinding']);
});

test('the DaemonSet passes the node name, keeps state on the host and probes the admin port', () => {
  const daemonSet = find(deployObjects(), 'DaemonSet') as any;
  const pod = daemonSet.spec.template.spec;
  assert.equal(pod.serviceAccountName, 'sensorlet');
  assert.deepEqual(daemonSet.spec.selector.matchLabels, daemonSet.spec.template.metadata.labels);
  const [container] = pod.containers;
  const env = Object.fromEntries(container.env.map((each: any) => [each.name, each.value ?? `fieldRef:${each.valueFrom.fieldRef.fieldPath}`]));
  assert.deepEqual(env, {
    NODE_NAME: 'fieldRef:spec.nodeName',
    POD_IP: 'fieldRef:status.podIP',
    POD_NAMESPACE: 'fieldRef:metadata.namespace',
    NODE_OPTIONS: '--max-semi-space-size=1 --max-old-space-size=512 --v8-pool-size=2',
  });
  assert.equal(container.args[0], 'run');
  for (const arg of ['--in-cluster', '--node-name=$(NODE_NAME)', '--state-dir=/var/lib/sensorlet', '--admin-addr=$(POD_IP):9470']) {
    assert.ok(container.args.includes(arg), arg);
  }
  assert.deepEqual(container.ports, [{ name: 'admin', containerPort: 9470, protocol: 'TCP' }]);
  assert.deepEqual([container.livenessProbe.httpGet, container.readinessProbe.httpGet], [
    { path: '/healthz', port: 'admin' },
    { path: '/readyz', port: 'admin' },
  ]);
  assert.ok(container.resources.requests.cpu && container.resources.requests.memory);
  assert.ok(container.resources.limits.cpu && container.resources.limits.memory);
  const state = pod.volumes.find((volume: any) => volume.name === 'state');
  assert.deepEqual(state.hostPath, { path: '/var/lib/sensorlet', type: 'DirectoryOrCreate' });
  assert.ok(container.volumeMounts.some((mount: any) => mount.name === 'state' && mount.mountPath === '/var/lib/sensorlet'));
  assert.equal(container.securityContext.allowPrivilegeEscalation, false);
});

test('the admin API on the pod IP needs the token from a Secret file; the probes stay on /healthz and /readyz, which need none', () => {
  const pod = (find(deployObjects(), 'DaemonSet') as any).spec.template.spec;
  const [container] = pod.containers;
  assert.ok(container.args.includes('--admin-token-file=/etc/sensorlet/admin/token'));
  const mount = container.volumeMounts.find((each: any) => each.name === 'admin-token');
  assert.deepEqual(mount, { name: 'admin-token', mountPath: '/etc/sensorlet/admin', readOnly: true });
  const volume = pod.volumes.find((each: any) => each.name === 'admin-token');
  assert.deepEqual(volume.secret, { secretName: 'sensorlet-admin-token', defaultMode: 0o400, items: [{ key: 'token', path: 'token' }] });
  // The chart renders the same wiring from its values.
  const chart = readFileSync(path.join(CHART, 'templates', 'daemonset.yaml'), 'utf8');
  for (const text of ['--admin-token-file=/etc/sensorlet/admin/token', 'mountPath: /etc/sensorlet/admin', '--admin-token-review', 'path: token']) assert.ok(chart.includes(text), text);
  assert.match(readFileSync(path.join(CHART, 'templates', 'admin-auth.yaml'), 'utf8'), /randAlphaNum 48 \| b64enc/);
});

test('the chart CRDs equal manifests/crds and the generator output', () => {
  const crdFiles = (dir: string) => readdirSync(dir).filter((file) => file.endsWith('.sensorlet.io.yaml')).sort();
  const manifestCrds = crdFiles(path.join(MANIFESTS, 'crds'));
  assert.deepEqual(crdFiles(path.join(CHART, 'crds')), manifestCrds);
  assert.deepEqual(readdirSync(path.join(CHART, 'crds')).sort(), manifestCrds, 'nothing but CRDs in the chart crds/');
  for (const file of manifestCrds) {
    assert.equal(readFileSync(path.join(CHART, 'crds', file), 'utf8'), readFileSync(path.join(MANIFESTS, 'crds', file), 'utf8'), file);
  }
  const generated = buildAllCrds().map((crd) => JSON.parse(JSON.stringify(crd)));
  const onDisk = manifestCrds.map((file) => load(path.join(MANIFESTS, 'crds', file))[0]);
  const byName = (docs: Doc[]) => Object.fromEntries(docs.map((doc) => [doc.metadata!.name, doc]));
  assert.deepEqual(byName(onDisk), byName(generated as Doc[]));
});

test('the chart: metadata, values valid against values.schema.json, templates use only declared values', () => {
  const chart = load(path.join(CHART, 'Chart.yaml'))[0] as Record<string, unknown>;
  assert.equal(chart.apiVersion, 'v2');
  assert.equal(chart.name, 'sensorlet');
  const packageVersion = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')).version;
  assert.equal(chart.appVersion, packageVersion);
  const values = load(path.join(CHART, 'values.yaml'))[0] as Record<string, unknown>;
  const schema = JSON.parse(readFileSync(path.join(CHART, 'values.schema.json'), 'utf8'));
  const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);
  assert.ok(validate(values), JSON.stringify(validate.errors));
  assert.equal(validate({ ...values, adminPort: 'x' }), false, 'the schema rejects a bad value');

  const templates = readdirSync(path.join(CHART, 'templates')).map((file) => readFileSync(path.join(CHART, 'templates', file), 'utf8'));
  const used = new Set(templates.flatMap((text) => [...text.matchAll(/\.Values\.([A-Za-z0-9_.]+)/g)].map((match) => match[1])));
  assert.ok(used.size > 10);
  for (const reference of used) {
    let node: unknown = values;
    for (const part of reference.split('.')) {
      assert.ok(node !== null && typeof node === 'object' && part in node, `.Values.${reference} is declared in values.yaml`);
      node = (node as Record<string, unknown>)[part];
    }
  }
  // The chart's RBAC template grants the same verbs as manifests/deploy.
  const rbac = readFileSync(path.join(CHART, 'templates', 'rbac.yaml'), 'utf8');
  const verbs = [...rbac.matchAll(/verbs: (\[.*\])/g)].map((match) => match[1]);
  assert.deepEqual([...new Set(verbs)].sort(), ['["get", "list", "watch", "create", "update"]', '["get", "list", "watch"]', '["patch"]']);
  assert.ok(existsSync(path.join(CHART, 'README.md')));
});

test('every operator policy flag has a Helm value the chart renders; manifests/deploy passes known flags with the chart defaults', () => {
  const policyFlags = [...readFileSync(path.join(PACKAGE_ROOT, 'cmd', 'sensorlet', 'policy-flags.ts'), 'utf8').matchAll(/\.option\(\s*'(--[a-z0-9-]+)/g)].map((match) => match[1]);
  assert.ok(policyFlags.length >= 20, `found ${policyFlags.length} policy flags`);
  // What the chart does not render, and why: it runs cluster mode only, where these have another form.
  const notInChart: Record<string, string> = {
    '--firmware-trust-dir': 'standalone only; the chart uses firmware.trustSecret',
    '--allow-manifest-links-outside': 'the folder source is standalone only',
    '--tenant-grants-file': 'the chart renders tenantGrants as --tenant-grant',
    '--agent-namespace': 'the chart sets POD_NAMESPACE from the downward API',
  };
  const template = readFileSync(path.join(CHART, 'templates', 'daemonset.yaml'), 'utf8');
  for (const flag of policyFlags.filter((each) => !(each in notInChart))) {
    assert.match(template, new RegExp(`${flag}(=|\\b)`), `the chart's DaemonSet can render ${flag}`);
  }

  // Every flag manifests/deploy passes is one `sensorlet run` knows, and where the chart renders the
  // same flag from a scalar value, manifests/deploy passes that value's default.
  const help = spawnSync(process.execPath, [CLI, 'run', '--help'], { encoding: 'utf8' }).stdout;
  const runFlags = new Set([...help.matchAll(/^\s+(--[a-z0-9-]+)/gm)].map((match) => match[1]));
  const values = load(path.join(CHART, 'values.yaml'))[0] as Record<string, any>;
  const rendered = new Map([...template.matchAll(/- (--[a-z0-9-]+)=\{\{ \.Values\.([A-Za-z0-9.]+) \}\}/g)].map((match) => [match[1], match[2]]));
  const daemonSet = find(deployObjects(), 'DaemonSet') as any;
  for (const arg of daemonSet.spec.template.spec.containers[0].args.filter((each: string) => each.startsWith('--'))) {
    const [flag, value] = arg.split(/=(.*)/s);
    assert.ok(runFlags.has(flag), `manifests/deploy passes ${flag}, which sensorlet run does not know`);
    const valuePath = rendered.get(flag);
    if (valuePath && value !== undefined) {
      const chartDefault = valuePath.split('.').reduce((node: any, part) => node?.[part], values);
      assert.equal(String(chartDefault), value, `${flag}: manifests/deploy passes ${value}, the chart's default (.Values.${valuePath}) is ${chartDefault}`);
    }
  }
});

test('the node restriction policy: an agent writes only its own node report and heartbeat (its CEL evaluated)', async () => {
  const { evaluate } = await import('@marcbachmann/cel-js');
  const policy = find(deployObjects(), 'ValidatingAdmissionPolicy') as any;
  const binding = find(deployObjects(), 'ValidatingAdmissionPolicyBinding') as any;
  assert.equal(binding.spec.policyName, policy.metadata.name);
  assert.deepEqual(binding.spec.validationActions, ['Deny']);
  assert.equal(policy.spec.failurePolicy, 'Fail');
  const agent = 'system:serviceaccount:sensorlet-system:sensorlet';
  /** Admission as kube-apiserver runs it: match conditions, then variables in order, then every validation. */
  const admitted = (request: Record<string, unknown>, object: unknown, oldObject: unknown = null): boolean => {
    const context: Record<string, any> = { request, object, oldObject, variables: {} };
    if (!policy.spec.matchConditions.every((condition: any) => evaluate(condition.expression, context) === true)) return true;
    for (const variable of policy.spec.variables) context.variables[variable.name] = evaluate(variable.expression, context);
    return policy.spec.validations.every((validation: any) => evaluate(validation.expression, context) === true);
  };
  const user = (node?: string, username = agent) => ({ username, extra: node ? { 'authentication.kubernetes.io/node-name': [node] } : {} });
  const report = (name: string, nodeName = name, label = name) => ({ metadata: { name, namespace: 'sensorlet-system', labels: { 'sensorlet.io/node': label } }, nodeName, resources: [] });
  const lease = (name: string, label?: string) => ({ metadata: { name, namespace: 'sensorlet-system', ...(label ? { labels: { 'sensorlet.io/node': label } } : {}) }, spec: {} });
  const write = (node: string | undefined, resource: string, operation: string, object: unknown, username?: string) =>
    admitted({ userInfo: user(node, username), operation, resource: { group: resource === 'leases' ? 'coordination.k8s.io' : 'sensorlet.io', resource } }, object, operation === 'UPDATE' ? object : null);

  assert.equal(write('node-a', 'nodereports', 'CREATE', report('node-a')), true, 'its own report');
  assert.equal(write('node-a', 'nodereports', 'UPDATE', report('node-a')), true);
  assert.equal(write('node-a', 'nodereports', 'UPDATE', report('node-b')), false, "another node's report");
  assert.equal(write('node-a', 'nodereports', 'CREATE', report('node-a', 'node-b')), false, 'its own name, another nodeName');
  assert.equal(write('node-a', 'nodereports', 'CREATE', report('node-a', 'node-a', 'node-b')), false, 'its own name, another node label');
  assert.equal(write(undefined, 'nodereports', 'CREATE', report('node-a')), false, 'no node-name claim: fail closed');
  assert.equal(write('node-a', 'leases', 'UPDATE', lease('sensorlet-node-node-a', 'node-a')), true, 'its own heartbeat');
  assert.equal(write('node-a', 'leases', 'UPDATE', lease('sensorlet-node-node-b', 'node-b')), false, "another node's heartbeat");
  assert.equal(write('node-a', 'leases', 'UPDATE', lease('sensorlet-node-node-a', 'node-b')), false, 'its heartbeat labelled as another node');
  assert.equal(write('node-a', 'leases', 'UPDATE', lease('sensorlet-leader')), true, 'the leader election Lease');
  assert.equal(write('node-a', 'leases', 'CREATE', lease('kube-scheduler')), false, 'any other Lease');
  assert.equal(write(undefined, 'nodereports', 'UPDATE', report('node-b'), 'system:admin'), true, 'not the agent: the policy does not apply');

  // The chart renders the same policy (names and namespace from the release).
  const expressions = (text: string) => [...text.matchAll(/expression: "(.*)"/g)].map((match) => match[1]).filter((expression) => !expression.startsWith('request.userInfo.username'));
  const chart = readFileSync(path.join(CHART, 'templates', 'node-restriction.yaml'), 'utf8');
  assert.deepEqual(expressions(chart), expressions(readFileSync(path.join(DEPLOY, 'node-restriction.yaml'), 'utf8')));
  assert.match(chart, /\.Capabilities\.APIVersions\.Has "admissionregistration\.k8s\.io\/v1\/ValidatingAdmissionPolicy"/);
});

test('printer columns show the fleet roll-up, and kubectl explain describes every status field and the NodeReport', () => {
  for (const crd of buildAllCrds() as any[]) {
    const kind = crd.spec.names.kind;
    const version = crd.spec.versions[0];
    const schema = version.schema.openAPIV3Schema;
    if (kind === 'NodeReport') {
      assert.equal(version.subresources, undefined, 'a report is written whole: no status subresource');
      for (const field of ['nodeName', 'resources']) assert.ok(schema.properties[field].description, `NodeReport.${field} described`);
      assert.deepEqual(Object.keys(schema.properties.resources.items.properties).sort(), ['kind', 'message', 'name', 'namespace', 'observedGeneration', 'reason', 'state']);
      continue;
    }
    const columns = Object.fromEntries(version.additionalPrinterColumns.map((column: any) => [column.name, column.jsonPath]));
    assert.equal(columns.Ready, '.status.readyOfDesired', `${kind}: READY 998/1000`);
    assert.equal(columns.Unknown, '.status.unknown');
    const status = schema.properties.status;
    assert.ok(status.description, `${kind}.status described`);
    for (const [field, property] of Object.entries(status.properties as Record<string, any>)) {
      assert.ok(property.description, `${kind}.status.${field} has a description for kubectl explain`);
      assert.notEqual(property['x-kubernetes-preserve-unknown-fields'], true, `${kind}.status.${field}: a known shape, not schema-less`);
    }
    assert.deepEqual(Object.keys(status.properties.worstNodes.items.properties).sort(), ['message', 'name', 'observedGeneration', 'reason', 'state']);
  }
});
