// A real MQTT subscriber (mqtt.js) that records every message a test's broker delivers.
import mqtt, { type MqttClient } from 'mqtt';
import { waitFor } from './ports.js';

export interface Received {
  topic: string;
  payload: any;
}

export class Subscriber {
  readonly messages: Received[] = [];
  private constructor(private readonly client: MqttClient) {}

  static async connect(url: string, topic = '#', options: mqtt.IClientOptions = {}): Promise<Subscriber> {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 200, clean: true, ...options });
    const subscriber = new Subscriber(client);
    client.on('message', (topicName, payload) => {
      const text = payload.toString();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* keep the text */
      }
      subscriber.messages.push({ topic: topicName, payload: parsed });
    });
    await client.subscribeAsync(topic, { qos: 1 });
    return subscriber;
  }

  /** Every reading received, flattening batch payloads (JSON arrays). */
  readings(): any[] {
    return this.messages.flatMap((message) => (Array.isArray(message.payload) ? message.payload : [message.payload]));
  }

  readingsOf(sensor: string): any[] {
    return this.readings().filter((reading) => reading?.sensor === sensor);
  }

  async waitForReadings(predicate: (readings: any[]) => boolean, timeoutMs = 10_000, what = 'readings'): Promise<void> {
    await waitFor(() => predicate(this.readings()), { timeoutMs, what: `${what} (have ${this.messages.length} messages)` });
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
