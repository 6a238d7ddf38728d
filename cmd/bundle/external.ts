// What the CLI bundle leaves outside (cmd/bundle/main.ts says why for each), and so what a release
// must ship in node_modules beside it.

/** esbuild's `external` list. */
export const BUNDLE_EXTERNAL = ['serialport', '@serialport/*', 'modbus-serial', '@kubernetes/client-node', 'pino-pretty', 'node-forge', 're2js'];

/**
 * The packages the bundle loads from node_modules at run time (their dependencies come along):
 * the external ones, and ajv with ajv-formats, whose validators are compiled at run time into code
 * that requires ajv's runtime helpers (ajv/dist/runtime/*) by name.
 */
export const RUNTIME_PACKAGES = ['serialport', 'modbus-serial', '@kubernetes/client-node', 'pino-pretty', 'node-forge', 're2js', 'ajv', 'ajv-formats'];
