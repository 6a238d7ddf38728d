// Importing this module registers every built-in driver.
import './simulated/simulated.js';
import './serial/serial.js';
import './modbus/modbus.js';
import './file/file.js';
import './command/command.js';

export { driverFactory, selectedDriver } from './registry.js';
