// What the CLI bundle leaves outside (cmd/bundle/main.ts says why for each), and so what a release
// must ship in node_modules beside it.

/** esbuild's `external` list. */
export const BUNDLE_EXTERNAL = ['serialport', '@serialport/*', 'modbus-serial', '@kubernetes/client-node', 'pino-pretty', 'node-forge', 're2js', 'ajv', 'ajv-formats'];

/** The packages the bundle loads from node_modules at run time (their dependencies come along). */
export const RUNTIME_PACKAGES = ['serialport', 'modbus-serial', '@kubernetes/client-node', 'pino-pretty', 'node-forge', 're2js', 'ajv', 'ajv-formats'];
