// The MQTT sink (mqtt.js): MQTT 3.1.1 or 5, QoS 0/1/2, optional mutual TLS. send() resolves when
// the broker acknowledged every message: PUBACK at QoS 1, PUBCOMP at QoS 2; at QoS 0 when the
// message was written to the socket (nothing more can be known, so QoS 0 can lose readings).
// When the connection drops, pending sends fail and the lane re-sends from the outbox once it is
// back; while it is down, a send waits for it (the lane keeps one in flight then) and nothing is
// handed to mqtt.js, so readings wait in the outbox.
import { createHash } from 'node:crypto';
import mqtt, { Store, type IClientOptions, type IDisconnectPacket, type MqttClient } from 'mqtt';
import type { Reading } from '../../api/reading.js';
import type { FieldError, SinkSpec } from '../../api/resource.js';
import { parseDuration } from '../../api/units.js';
import { messageOf } from '../../api/errors.js';
import { batchReadings, type CommandOutcome, type Transport, type TransportContext, type TransportFactory } from '../transport.js';
import { registerTransport } from '../registry.js';
import { commandTopic, commandTopicErrors, renderTopic, topicTemplateErrors } from '../topic.js';
import { classifyConnectionError } from './errors.js';
import { redactCredentials, urlHasPassword } from '../../api/redact.js';
import { sinkTlsOptions } from '../tls.js';
import { SENML_CBOR_MEDIA_TYPE, SENML_JSON_MEDIA_TYPE, encodeSenmlCbor, encodeSenmlJson } from '../senml/senml.js';

export type MqttConfig = NonNullable<SinkSpec['mqtt']>;

export const DEFAULT_TOPIC = 'sensorlet/{tenant}/{device}/{sensor}';
export const DEFAULT_COMMAND_TOPIC = 'sensorlet/{tenant}/{device}/actuators/{actuator}/set';
/** A command is a value and an optional duration: anything longer is not one. */
const MAX_COMMAND_BYTES = 1024;
/**
 * MQTT 5: the largest packet this client takes (CONNECT's Maximum Packet Size) when it listens for
 * commands. The broker must not send a larger one (Mosquitto drops it for this client), so a huge
 * publish on a command topic never reaches the agent's memory; mqtt.js also refuses (and drops the
 * connection on) a larger packet, though only after reading it. Readings are only published, so
 * the limit costs nothing else. MQTT 3.1.1 has no such property: the broker's message_size_limit
 * (or max_packet_size) is the only bound there (see the MQTT sink's README).
 */
export const MAX_INCOMING_PACKET_BYTES = 64 * 1024;
/** Commands per connection and second, and the burst allowed on top (a token bucket). */
const COMMANDS_PER_SECOND = 10;
const COMMAND_BURST = 20;
/** Commands handled at once per connection; more are refused (Busy) rather than queued without bound. */
const MAX_COMMANDS_IN_FLIGHT = 16;
const RECONNECT_BASE_MS = 500;
const RECONNECT_CAP_MS = 30_000;
/** MQTT 5 DISCONNECT reason: another client connected with this client id. */
const SESSION_TAKEN_OVER = 0x8e;
/**
 * With one message per reading, about this many are kept on the wire. Brokers send PUBACKs with
 * Nagle's algorithm (Mosquitto unless `set_tcp_nodelay`): once the window is full the agent has
 * nothing to send, its kernel delays the TCP ACK that would release them (up to 40 ms on Linux),
 * and the window, not the CPU, sets the rate. Measured against Mosquitto on loopback: 1000
 * messages (two batches of 500) delivered about 16k readings/s with the agent's CPU half idle;
 * 4000 kept it CPU-bound at about 35k/s, as fast as raw mqtt.js publishing everything at once.
 */
const READINGS_IN_FLIGHT = 4000;

/**
 * mqtt.js keeps a copy of every unacknowledged QoS 1/2 message in its outgoing store, to replay on
 * reconnect: one message per round trip after CONNACK, reporting `connect` only after it, which
 * with thousands in flight outlasted a flapping link. The lane re-sends from the outbox instead,
 * and the copies outlived V8's young generation. This store keeps nothing: acknowledgements still
 * find their callbacks in mqtt.js's own table of messages in flight.
 */
class ForgetfulStore extends Store {
  override put(_packet: Parameters<Store['put']>[0], callback: Parameters<Store['put']>[1]): this {
    callback?.();
    return this;
  }

  override del(_packet: Parameters<Store['del']>[0], callback: Parameters<Store['del']>[1]): this {
    callback?.();
    return this;
  }
}

/**
 * The client id when the Sink names none. A broker keeps one connection per client id and closes
 * the older one when another connects with it, so two connections sharing an id take turns kicking
 * each other off. Unique per device, Sink (namespace and name) and tenant connection: the readable
 * part says whose it is, the hash keeps ids apart that the readable part would confuse
 * (namespace `a-b` with Sink `c` against namespace `a` with Sink `b-c`).
 */
export function defaultClientId(device: string, sink: { namespace: string; name: string }, tenant: string | undefined): string {
  const hash = createHash('sha256').update(JSON.stringify([device, sink.namespace, sink.name, tenant ?? null])).digest('hex').slice(0, 8);
  return `sensorlet-${device}-${sink.namespace}-${sink.name}${tenant ? `-${tenant}` : ''}-${hash}`;
}

/** The payload of one reading: the reading itself, with the tenant the connection carries. */
export function readingPayload(reading: Reading, tenant: string | undefined): string {
  return JSON.stringify(reading.tenant || !tenant ? reading : { ...reading, tenant });
}

/** A JSON array of readings: one stringify when none needs the connection's tenant stamped. */
export function batchPayload(readings: Reading[], tenant: string | undefined): string {
  if (!tenant || readings.every((reading) => reading.tenant)) return JSON.stringify(readings);
  return `[${readings.map((reading) => readingPayload(reading, tenant)).join(',')}]`;
}

export function createMqttTransport(config: MqttConfig, context: TransportContext): Transport {
  const qos = (config.qos ?? 1) as 0 | 1 | 2;
  const template = config.topic ?? DEFAULT_TOPIC;
  const tenantOfConnection = context.identity.tenant;
  const logger = context.logger;
  /** The URL as messages show it (validation refuses a password in it; this is the second line of defence). */
  const shownUrl = redactCredentials(config.url);
  let client: MqttClient | undefined;
  let refusal: Error | undefined;
  let reconnectDelay = RECONNECT_BASE_MS;
  /** Why the last attempt failed: the close that follows an error must not hide its reason. */
  let lastFailure: { reason: string; message: string } | undefined;
  /** Up, and not ended by close(): a close now comes from the far end or the network. */
  let established = false;
  /** The last connection was closed without an error or a reason (see 'connect'). */
  let closedByBroker = false;
  let reconnectsSinceClose = 0;
  const takeoverMessage = (how: string) =>
    `${how}: another client connected with this connection's client id ${options.clientId}, and the broker closed this one; give each connection its own spec.mqtt.clientId`;
  const reportTakeover = (how: string): void => {
    logger.warn({ reason: 'SessionTakenOver', clientId: options.clientId }, takeoverMessage(how));
    context.onTakeover?.();
  };
  /** Sends waiting for the connection share one waiter (a `connect` listener per send would pile up while offline). */
  let connectWaiter: { promise: Promise<void>; settle: () => void } | undefined;
  const settleConnectWaiter = (): void => {
    connectWaiter?.settle();
    connectWaiter = undefined;
  };
  /** Settles once the sends called so far published (or failed to): the next one publishes after them. */
  let publishOrder: Promise<void> = Promise.resolve();
  /**
   * Rejecters of the sends still waiting for acknowledgements. mqtt.js keeps the callbacks of QoS 1/2
   * messages across a forced end() while reconnectPeriod ≠ 0 and never calls them, so close() fails
   * them itself: otherwise the lane would wait forever on a replaced connection (seen on rotation
   * under load: reconnected, nothing more delivered).
   */
  const pending = new Set<(error: Error) => void>();
  const settleOnClose = <T>(work: Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      pending.add(reject);
      work.then(
        (value) => {
          pending.delete(reject);
          resolve(value);
        },
        (error) => {
          pending.delete(reject);
          reject(error);
        },
      );
    });
  const failPending = (error: Error): void => {
    for (const reject of pending) reject(error);
    pending.clear();
  };
  const topicCache = new Map<string, string>();
  // Consecutive readings almost always come from the same Sensor: skip building the cache key.
  let lastTopic: { namespace: string; sensor: string; tenant: string | undefined; topic: string } | undefined;

  const topicFor = (reading: Reading): string => {
    if (lastTopic && lastTopic.sensor === reading.sensor && lastTopic.namespace === reading.namespace && lastTopic.tenant === reading.tenant) {
      return lastTopic.topic;
    }
    const cacheKey = `${reading.namespace}/${reading.sensor}/${reading.tenant ?? ''}`;
    let topic = topicCache.get(cacheKey);
    if (topic === undefined) {
      topic = renderTopic(template, {
        tenant: tenantOfConnection ?? reading.tenant ?? 'default',
        device: context.identity.device,
        sensor: reading.sensor,
        namespace: reading.namespace,
      });
      topicCache.set(cacheKey, topic);
    }
    lastTopic = { namespace: reading.namespace, sensor: reading.sensor, tenant: reading.tenant, topic };
    return topic;
  };

  /**
   * Resolves once the client is connected. Publishing before that hands QoS 1/2 messages to
   * mqtt.js's offline store, which it replays one message per round trip after CONNACK (and only
   * then reports `connect`): with a lane's batches waiting, that took seconds under load.
   */
  const untilConnected = (active: MqttClient): Promise<void> | undefined => {
    if (active.connected) return undefined;
    if (!connectWaiter) {
      let settle!: () => void;
      const promise = new Promise<void>((resolve) => (settle = resolve));
      connectWaiter = { promise, settle };
    }
    return connectWaiter.promise;
  };

  /**
   * Publishes `count` messages and resolves when all are acknowledged: one callback each, no
   * promise (or intermediate array) per message.
   */
  const publishEach = (
    active: MqttClient,
    count: number,
    message: (index: number) => { topic: string; payload: string | Buffer },
    publishOptions: Parameters<MqttClient['publish']>[2],
  ) =>
    new Promise<void>((resolve, reject) => {
      let left = count;
      let failed = false;
      if (left === 0) return resolve();
      const done = (error?: Error) => {
        if (failed) return;
        if (error) {
          failed = true;
          reject(error);
        } else if (--left === 0) resolve();
      };
      for (let index = 0; index < count; index++) {
        const { topic, payload } = message(index);
        active.publish(topic, payload, publishOptions!, done);
      }
    });

  /** One message per topic: the readings of each topic in their order. */
  const groupByTopic = (readings: Reading[]): Map<string, Reading[]> => {
    const groups = new Map<string, Reading[]>();
    for (const reading of readings) {
      const topic = topicFor(reading);
      const group = groups.get(topic);
      if (group) group.push(reading);
      else groups.set(topic, [reading]);
    }
    return groups;
  };

  const options: IClientOptions = {
    protocolVersion: (config.protocolVersion ?? 4) as 4 | 5,
    clientId: config.clientId ?? defaultClientId(context.identity.device, context.sink, tenantOfConnection),
    keepalive: Math.max(1, Math.round(parseDuration(config.keepalive ?? '30s') / 1000)),
    reconnectPeriod: RECONNECT_BASE_MS,
    connectTimeout: 10_000,
    clean: true,
    // Readings wait in the outbox, not in mqtt.js, while offline; QoS 1/2 in flight are kept by mqtt.js.
    queueQoSZero: false,
    outgoingStore: new ForgetfulStore(),
    // mqtt-packet otherwise pre-builds a 2-byte Buffer for each of the 65536 packet ids: 6 MB of heap
    // that a device pays for a cache worth nanoseconds per message.
    writeCache: false,
    // mqtt.js calls its `debug` logger several times per message, costing a few % of a core at
    // tens of thousands of messages/s even when disabled; keep it only when asked for (DEBUG=mqttjs*).
    ...(/mqttjs/.test(process.env.DEBUG ?? '') ? {} : { log: () => undefined }),
    ...(context.spec.tls || context.identity.keySlot ? sinkTlsOptions(context) : {}),
    // From usernameFrom / passwordFrom (pkg/controller resolves them); never from a log or status.
    ...(context.credentials?.username !== undefined ? { username: context.credentials.username } : {}),
    ...(context.credentials?.password !== undefined ? { password: context.credentials.password } : {}),
  } as IClientOptions;

  /** Publishes one send's readings (synchronously) and resolves when the broker acknowledged them. */
  const publish = (active: MqttClient, readings: Reading[]): Promise<void> => {
    if (config.payload === 'senml-json' || config.payload === 'senml-cbor') {
      // One SenML pack per topic and chunk (RFC 8428); MQTT 5 says what it is in the content type.
      const cbor = config.payload === 'senml-cbor';
      const properties = options.protocolVersion === 5 ? { contentType: cbor ? SENML_CBOR_MEDIA_TYPE : SENML_JSON_MEDIA_TYPE } : undefined;
      const messages: { topic: string; payload: string | Buffer }[] = [];
      for (const [topic, group] of groupByTopic(readings)) {
        // Readings without a value have no SenML record; an empty pack is not worth a message.
        if (!group.some((reading) => reading.value !== undefined || reading.values !== undefined)) continue;
        messages.push({ topic, payload: cbor ? encodeSenmlCbor(group) : encodeSenmlJson(group) });
      }
      return publishEach(active, messages.length, (index) => messages[index], { qos, ...(properties ? { properties } : {}) });
    }
    if (config.payload === 'batch') {
      const messages = [...groupByTopic(readings)].map(([topic, group]) => ({ topic, payload: batchPayload(group, tenantOfConnection) }));
      return publishEach(active, messages.length, (index) => messages[index], { qos });
    }
    return publishEach(active, readings.length, (index) => ({ topic: topicFor(readings[index]), payload: readingPayload(readings[index], tenantOfConnection) }), { qos });
  };

  /**
   * Subscribes to this connection's command topic (again after every reconnect: clean sessions)
   * and answers each command on its topic + /reply. Only this connection's tenant and device are in
   * the filter, so a command arrives on the connection of the tenant that may publish it.
   */
  function listenForCommands(active: MqttClient, commands: NonNullable<MqttConfig['commands']>, onCommand: NonNullable<TransportContext['onCommand']>, tenant: string): void {
    let topics: ReturnType<typeof commandTopic>;
    try {
      topics = commandTopic(commands.topic ?? DEFAULT_COMMAND_TOPIC, { tenant, device: context.identity.device, namespace: context.sink.namespace });
    } catch (error) {
      logger.error({ reason: 'TopicInjection', err: (error as Error).message }, 'not listening for commands');
      return;
    }
    const commandQos = (commands.qos ?? 1) as 0 | 1;
    let inFlight = 0;
    // A token bucket: remoteSet answers at once, so the in-flight cap alone would never stop a flood.
    let tokens = COMMAND_BURST;
    let refilledAt = Date.now();
    const takeToken = (): boolean => {
      const now = Date.now();
      tokens = Math.min(COMMAND_BURST, tokens + ((now - refilledAt) / 1000) * COMMANDS_PER_SECOND);
      refilledAt = now;
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    };
    active.on('connect', () => {
      active.subscribe(topics.filter, { qos: commandQos }, (error, granted) => {
        const refused = granted?.some((grant) => grant.qos === 0x80);
        if (error || refused) logger.warn({ filter: topics.filter, err: error ? messageOf(error) : 'the broker refused the subscription' }, 'not listening for commands');
        else logger.info({ filter: topics.filter }, 'listening for commands');
      });
    });
    active.on('message', (topic, payload) => {
      const actuator = topics.actuatorOf(topic);
      if (actuator === undefined) return;
      const reply = (outcome: CommandOutcome) => {
        if (active.connected) active.publish(`${topic}/reply`, JSON.stringify(outcome), { qos: commandQos });
      };
      // Refused before the payload is read; still counted and logged by the agent, and answered.
      let refused: CommandOutcome | undefined;
      if (!takeToken()) refused = { accepted: false, reason: 'RateLimited', message: `more than ${COMMANDS_PER_SECOND} commands a second on this connection; try again` };
      else if (payload.length > MAX_COMMAND_BYTES) refused = { accepted: false, reason: 'TooLarge', message: `a command of ${payload.length} bytes; at most ${MAX_COMMAND_BYTES}` };
      else if (inFlight >= MAX_COMMANDS_IN_FLIGHT) refused = { accepted: false, reason: 'Busy', message: `${MAX_COMMANDS_IN_FLIGHT} commands are being applied on this connection; try again` };
      inFlight++;
      onCommand(refused ? { actuator, payload: Buffer.alloc(0), tenant, refused } : { actuator, payload, tenant })
        .then(reply, (error: unknown) => reply({ accepted: false, reason: 'CommandFailed', message: messageOf(error) }))
        .finally(() => inFlight--);
    });
  }

  return {
    // One message per reading: the window is counted in messages (READINGS_IN_FLIGHT), whatever
    // the batch size. Packed payloads are one message per topic and batch, so they keep the lane's
    // default.
    ...((config.payload ?? 'reading') === 'reading' ? { maxInFlightBatches: Math.max(2, Math.ceil(READINGS_IN_FLIGHT / batchReadings(context.spec))) } : {}),
    start() {
      // The device and tenant come from flags and certificate SANs, not from validated names:
      // refuse to connect (readings wait in the outbox) rather than publish to a forged topic.
      try {
        renderTopic(template, { tenant: tenantOfConnection ?? 'default', device: context.identity.device, sensor: 'sensor', namespace: 'default' });
      } catch (error) {
        refusal = error as Error;
        context.onState({ connected: false, reason: 'TopicInjection', message: refusal.message });
        return;
      }
      // Commands are only ever accepted from a tenant's connection: one without a tenant does not
      // subscribe at all (everything it received would be refused, after being read).
      const commandsOn = config.commands !== undefined && context.onCommand !== undefined && tenantOfConnection !== undefined;
      if (config.commands && context.onCommand && !commandsOn) logger.info({ reason: 'NoTenant' }, 'not listening for commands: this connection has no tenant (no client certificate), and only a tenant may set Actuators');
      client = mqtt.connect(config.url, commandsOn && options.protocolVersion === 5 ? { ...options, properties: { ...options.properties, maximumPacketSize: MAX_INCOMING_PACKET_BYTES } } : options);
      established = false;
      if (commandsOn) listenForCommands(client, config.commands!, context.onCommand!, tenantOfConnection!);
      client.on('connect', () => {
        // Closed by a broker that stayed up (this is the first reconnect since): MQTT 3.1.1 brokers,
        // and some MQTT 5 ones, close the older connection without a word when a client connects
        // with its client id. Told apart from a broker restart by the reconnect that just worked.
        if (closedByBroker && reconnectsSinceClose <= 1) reportTakeover('most likely (closed without a reason, then reconnected at once: the broker stayed up)');
        closedByBroker = false;
        reconnectDelay = RECONNECT_BASE_MS;
        client!.options.reconnectPeriod = reconnectDelay;
        lastFailure = undefined;
        established = true;
        context.onState({ connected: true });
        settleConnectWaiter();
      });
      // MQTT 5: the broker says why it ends the connection (0x8E: another client took the client id).
      client.on('disconnect', (packet: IDisconnectPacket) => {
        const code = packet.reasonCode ?? 0;
        if (code === SESSION_TAKEN_OVER) {
          lastFailure = { reason: 'SessionTakenOver', message: takeoverMessage('the broker says (MQTT reason 0x8e)') };
          reportTakeover('the broker says (MQTT reason 0x8e)');
          return;
        }
        lastFailure = { reason: 'DisconnectedByBroker', message: `the broker ended the connection (MQTT reason 0x${code.toString(16).padStart(2, '0')}${packet.properties?.reasonString ? `: ${packet.properties.reasonString}` : ''})` };
        logger.warn({ reason: lastFailure.reason, clientId: options.clientId, mqttReason: code }, lastFailure.message);
      });
      client.on('reconnect', () => reconnectsSinceClose++);
      client.on('error', (error) => {
        const { reason, message: said } = classifyConnectionError(error);
        const message = redactCredentials(said);
        logger.warn({ reason, err: message }, 'mqtt connection error');
        lastFailure = { reason, message };
        context.onState({ connected: false, reason, message });
      });
      client.on('close', () => {
        // A connection that was up and ends without an error or a DISCONNECT (MQTT 3.1.1 has none)
        // was closed by the broker or the network; a broker does that when another client connects
        // with the same client id, so say which id this connection uses ('connect' tells more).
        if (established && !lastFailure) {
          closedByBroker = true;
          reconnectsSinceClose = 0;
          lastFailure = { reason: 'ConnectionClosed', message: `the connection of client id ${options.clientId} was closed without a reason (a broker restart, the network, or another client connecting with the same id)` };
          logger.warn({ reason: lastFailure.reason, clientId: options.clientId }, 'mqtt connection closed without a reason');
        }
        established = false;
        // Sends waiting for a connection re-check it (and fail: not connected).
        settleConnectWaiter();
        // Fail what is in flight: the lane rewinds and re-sends from its oldest unacknowledged
        // batch on the next connection. mqtt.js has no copies to replay (ForgetfulStore), but its
        // table of messages in flight outlives the connection: clear it, or its entries would pile
        // up across reconnects.
        failPending(Object.assign(new Error(`connection to ${shownUrl} lost`), { code: 'ConnectionLost' }));
        for (const messageId of Object.keys(client!.outgoing)) client!.removeOutgoingMessage(Number(messageId));
        // Capped exponential backoff: mqtt.js reads reconnectPeriod before each reconnect attempt.
        reconnectDelay = Math.min(RECONNECT_CAP_MS, reconnectDelay * 2);
        client!.options.reconnectPeriod = reconnectDelay;
        context.onState(
          lastFailure
            ? { connected: false, reason: lastFailure.reason, message: `${lastFailure.message}; retrying` }
            : { connected: false, reason: 'Disconnected', message: `connection to ${shownUrl} closed; retrying` },
        );
      });
    },

    async send(readings: Reading[]): Promise<void> {
      if (refusal) throw refusal;
      if (!client) throw new Error('transport not started');
      const active = client;
      // Publish in the order send() was called: a send that waited for the connection must not be
      // overtaken by a later one that found it up (the lane opens its window on reconnect).
      const issued = publishOrder.then(async () => {
        const connecting = untilConnected(active);
        if (connecting) await connecting;
        // Never let mqtt.js queue publishes while offline: its offline queue and its replay of
        // unacknowledged messages can interleave on reconnect, which would reorder readings.
        if (!active.connected) throw Object.assign(new Error(`not connected to ${shownUrl}`), { code: 'NotConnected' });
        // In an object: the acknowledgements are awaited after the next send may publish.
        return { acknowledged: publish(active, readings) };
      });
      publishOrder = issued.then(
        () => undefined,
        () => undefined,
      );
      const { acknowledged } = await settleOnClose(issued);
      await settleOnClose(acknowledged);
    },

    async close() {
      // Force: pending sends fail, and their readings stay in the outbox for the next connection.
      if (client) client.options.reconnectPeriod = 0;
      established = false; // our own close: nothing to warn about
      failPending(Object.assign(new Error(`connection to ${shownUrl} closed`), { code: 'ConnectionClosed' }));
      await client?.endAsync(true);
    },
  };
}

function urlUsername(url: string): string {
  try {
    return new URL(url).username;
  } catch {
    return '';
  }
}

export const mqttTransport: TransportFactory<MqttConfig> = {
  name: 'mqtt',
  validate(config, path): FieldError[] {
    const errors: FieldError[] = [];
    // A password in the URL would be in every copy of the spec (kubectl get, the admin API, git):
    // credentials come from passwordFrom, which names where the password is, not what it is.
    if (urlHasPassword(config.url)) {
      errors.push({ path: `${path}.url`, message: `a password in the URL is refused (it would be shown wherever the Sink is); give it with ${path}.passwordFrom`, reason: 'InvalidSpec' });
    } else if (config.usernameFrom && urlUsername(config.url)) {
      errors.push({ path: `${path}.usernameFrom`, message: `the URL names a user too: give the user name in one place`, reason: 'InvalidSpec' });
    }
    // One error per field: the first problem is the one to fix first.
    const [problem] = topicTemplateErrors(config.topic ?? DEFAULT_TOPIC);
    if (problem) errors.push({ path: `${path}.topic`, message: problem, reason: 'InvalidSpec' });
    const [commandProblem] = config.commands ? commandTopicErrors(config.commands.topic ?? DEFAULT_COMMAND_TOPIC) : [];
    if (commandProblem) errors.push({ path: `${path}.commands.topic`, message: commandProblem, reason: 'InvalidSpec' });
    return errors;
  },
  create: createMqttTransport,
};

registerTransport(mqttTransport);
