// Importing this module registers every built-in actuator driver.
import './modbus/modbus.js';
import './serial/serial.js';
import './file/file.js';
import './command/command.js';

export { actuatorDriverFactory } from './registry.js';
export { actuatorSpecErrors } from './values.js';
