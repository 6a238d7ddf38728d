// Importing this module registers every built-in sink transport.
import './stdout/stdout.js';
import './mqtt/mqtt.js';
import './coap/coap.js';

export { selectedTransport, transportFactories } from './registry.js';
