// Builds the CustomResourceDefinitions from schemas/: namespaced, status subresource, printer
// columns and the `sensorlet` category, with every $ref inlined (structural schemas allow none).
import { API_GROUP, inlineRefs, loadSchema, walkSchema, type JsonSchema, type Kind, KINDS } from './schemas.js';

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

const READY_NODES = '.status.nodes[*].conditions[?(@.type=="Ready")].status';

export const KIND_NAMES: Record<Kind, KindNames> = {
  Sensor: {
    plural: 'sensors',
    singular: 'sensor',
    shortNames: ['sn'],
    cliNames: ['sen'],
    // JSONPath cannot print which key of the driver union is set: the agent reports it as a fact.
    columns: [
      { name: 'Driver', type: 'string', jsonPath: '.status.nodes[0].driver' },
      { name: 'Interval', type: 'string', jsonPath: '.spec.interval' },
      { name: 'Ready', type: 'string', jsonPath: READY_NODES },
      { name: 'Last', type: 'string', jsonPath: '.status.nodes[0].lastReading.value' },
      { name: 'Unit', type: 'string', jsonPath: '.spec.unit', priority: 1 },
    ],
  },
  Sink: {
    plural: 'sinks',
    singular: 'sink',
    shortNames: ['sk'],
    // Protocol and URL come from the agent's facts: the transport is a union (mqtt, coap, stdout).
    columns: [
      { name: 'Protocol', type: 'string', jsonPath: '.status.nodes[0].protocol' },
      { name: 'URL', type: 'string', jsonPath: '.status.nodes[0].url' },
      { name: 'Ready', type: 'string', jsonPath: READY_NODES },
      { name: 'Queued', type: 'integer', jsonPath: '.status.nodes[*].queued' },
    ],
  },
  Certificate: {
    plural: 'certificates',
    singular: 'certificate',
    shortNames: ['slcert'],
    cliNames: ['cert', 'certs'],
    columns: [
      { name: 'Tenant', type: 'string', jsonPath: '.status.nodes[0].tenant' },
      { name: 'Ready', type: 'string', jsonPath: READY_NODES },
      { name: 'Expires', type: 'string', jsonPath: '.status.nodes[0].notAfter' },
    ],
  },
  Firmware: {
    plural: 'firmwares',
    singular: 'firmware',
    shortNames: ['fw'],
    columns: [
      { name: 'Version', type: 'string', jsonPath: '.spec.version' },
      { name: 'Target', type: 'string', jsonPath: '.spec.target' },
      { name: 'Phase', type: 'string', jsonPath: '.status.nodes[*].phase' },
      { name: 'Current', type: 'string', jsonPath: '.status.nodes[*].currentVersion', priority: 1 },
    ],
  },
  Actuator: {
    plural: 'actuators',
    singular: 'actuator',
    shortNames: ['act'],
    // desired may be a number, true/false or a list: printed as the API server renders it.
    columns: [
      { name: 'Desired', type: 'string', jsonPath: '.spec.desired' },
      { name: 'Observed', type: 'string', jsonPath: '.status.nodes[0].observed' },
      { name: 'In-Sync', type: 'string', jsonPath: '.status.nodes[*].conditions[?(@.type=="InSync")].status' },
      { name: 'Driver', type: 'string', jsonPath: '.status.nodes[0].driver', priority: 1 },
    ],
  },
};

/** The openAPIV3Schema of a kind: JSON Schema keywords Kubernetes does not accept are removed. */
export function crdSchema(kind: Kind): JsonSchema {
  const schema = inlineRefs(loadSchema(kind));
  delete schema.$schema;
  delete schema.title;
  delete schema.$comment;
  const properties = schema.properties as JsonSchema;
  // Kubernetes validates metadata itself and rejects a schema that constrains it beyond its type.
  properties.metadata = { type: 'object' };
  walkSchema(schema, (node) => delete node.$comment);
  return schema;
}

export function buildCrd(kind: Kind): JsonSchema {
  const names = KIND_NAMES[kind];
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
          subresources: { status: {} },
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
  return KINDS.map(buildCrd);
}
