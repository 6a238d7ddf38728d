// Importing this module registers every built-in driver.
import './simulated/simulated.js';

export { driverFactory, selectedDriver } from './registry.js';
