// Builds the CustomResourceDefinitions from schemas/: namespaced, status subresource, printer
// columns and the `sensorlet` category, with every $ref inlined (structural schemas allow none).
import { API_GROUP, CRD_KINDS, inlineRefs, KINDS, loadSchema, walkSchema, type CrdKind, type JsonSchema, type Kind } from './schemas.js';

interface KindNames {
  plural: string;
  singular: string;
  /** The CRD's short names (kubectl); they must not collide with other projects' CRDs. */
  shortNames: string[];
  /**
   * Further names `sensorlet get` accepts, which would collide in a cluster (cert-manager's
   * Certificate owns `cert`), so they are not CRD short names.
   */
  cliNames?: string[];
  columns: { name: string; type: string; jsonPath: string; priority?: number }[];
}

// The fleet roll-up (status written by the elected agent): READY 998/1000 like a DaemonSet's, then the
// nodes that need a look. Per-node facts (driver, last value, queue) are on each agent's admin API.
const FLEET_COLUMNS: KindNames['columns'] = [
  { name: 'Ready', type: 'string', jsonPath: '.status.readyOfDesired' },
  { name: 'Degraded', type: 'integer', jsonPath: '.status.degraded' },
  { name: 'Unknown', type: 'integer', jsonPath: '.status.unknown' },
  { name: 'Worst', type: 'string', jsonPath: '.status.worstNodes[0].name', priority: 1 },
  { name: 'Reason', type: 'string', jsonPath: '.status.worstNodes[0].reason', priority: 1 },
];

export const KIND_NAMES: Record<CrdKind, KindNames> = {
  Sensor: {
    plural: 'sensors',
    singular: 'sensor',
    shortNames: ['sn'],
    cliNames: ['sen'],
    columns: [
      { name: 'Interval', type: 'string', jsonPath: '.spec.interval' },
      ...FLEET_COLUMNS,
      { name: 'Unit', type: 'string', jsonPath: '.spec.unit', priority: 1 },
    ],
  },
  Sink: {
    plural: 'sinks',
    singular: 'sink',
    shortNames: ['sk'],
    columns: FLEET_COLUMNS,
  },
  Certificate: {
    plural: 'certificates',
    singular: 'certificate',
    shortNames: ['slcert'],
    cliNames: ['cert', 'certs'],
    columns: FLEET_COLUMNS,
  },
  Firmware: {
    plural: 'firmwares',
    singular: 'firmware',
    shortNames: ['fw'],
    columns: [
      { name: 'Version', type: 'string', jsonPath: '.spec.version' },
      { name: 'Target', type: 'string', jsonPath: '.spec.target' },
      ...FLEET_COLUMNS,
    ],
  },
  Actuator: {
    plural: 'actuators',
    singular: 'actuator',
    shortNames: ['act'],
    // desired may be a number, true/false or a list: printed as the API server renders it.
    columns: [{ name: 'Desired', type: 'string', jsonPath: '.spec.desired' }, ...FLEET_COLUMNS],
  },
  NodeReport: {
    plural: 'nodereports',
    singular: 'nodereport',
    shortNames: ['nrep'],
    columns: [{ name: 'Node', type: 'string', jsonPath: '.nodeName' }],
  },
};

/** The openAPIV3Schema of a kind: JSON Schema keywords Kubernetes does not accept are removed. */
export function crdSchema(kind: CrdKind): JsonSchema {
  const schema = inlineRefs(loadSchema(kind));
  delete schema.$schema;
  delete schema.title;
  delete schema.$comment;
  const properties = schema.properties as JsonSchema;
  // Kubernetes validates metadata itself and rejects a schema that constrains it beyond its type.
  properties.metadata = { type: 'object' };
  // maxDuration is Sensorlet's own keyword (checked by pkg/api/validate.ts); the API server knows none.
  walkSchema(schema, (node) => {
    delete node.$comment;
    delete node.maxDuration;
  });
  return schema;
}

export function buildCrd(kind: CrdKind): JsonSchema {
  const names = KIND_NAMES[kind];
  // A NodeReport is written whole by its agent: no spec/status split, so no status subresource.
  const declared = (KINDS as readonly string[]).includes(kind);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${names.plural}.${API_GROUP}` },
    spec: {
      group: API_GROUP,
      scope: 'Namespaced',
      names: {
        kind,
        listKind: `${kind}List`,
        plural: names.plural,
        singular: names.singular,
        shortNames: names.shortNames,
        categories: ['sensorlet'],
      },
      versions: [
        {
          name: 'v1alpha1',
          served: true,
          storage: true,
          ...(declared ? { subresources: { status: {} } } : {}),
          additionalPrinterColumns: [
            ...names.columns,
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: { openAPIV3Schema: crdSchema(kind) },
        },
      ],
    },
  };
}

export function buildAllCrds(): JsonSchema[] {
  return CRD_KINDS.map(buildCrd);
}
