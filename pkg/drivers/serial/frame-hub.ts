// Dispatches the frames cut from one shared port to the Sensors that read it. Sensors with the same
// framing share one framer, so a frame that none of them claims is a bad frame (garbage, or a line no
// pattern matches) rather than "somebody else's". During a request/response exchange the requester
// gets every frame on its own.
import { SensorletError } from '../../api/errors.js';
import { describeUntrusted } from '../../api/untrusted.js';
import type { Framer } from './framer.js';
import type { PortState, SharedSerialPort } from './shared-port.js';

export interface FrameConsumer {
  /** Returns true when the frame was for this consumer. */
  frame(bytes: Buffer): boolean;
  bad(error: SensorletError): void;
  state(state: PortState): void;
}

export class FrameHub {
  readonly consumers = new Set<FrameConsumer>();
  requester: FrameConsumer | undefined;

  constructor(
    port: SharedSerialPort,
    readonly framer: Framer,
  ) {
    port.subscribe({
      data: (chunk) => this.dispatch(chunk),
      state: (state) => {
        if (!state.up) this.framer.reset();
        this.requester?.state(state);
        for (const consumer of this.consumers) consumer.state(state);
      },
    });
  }

  private dispatch(chunk: Buffer): void {
    for (const event of this.framer.push(chunk)) {
      if (event.kind === 'bad') {
        if (this.requester) this.requester.bad(event.error);
        else for (const consumer of this.consumers) consumer.bad(event.error);
        continue;
      }
      if (this.requester) {
        this.requester.frame(event.bytes);
        continue;
      }
      let claimed = false;
      for (const consumer of this.consumers) claimed = consumer.frame(event.bytes) || claimed;
      if (!claimed && this.consumers.size > 0) {
        const error = new SensorletError('BadFrame', `frame of ${describeUntrusted(event.bytes)} matched no Sensor on this port`);
        for (const consumer of this.consumers) consumer.bad(error);
      }
    }
  }
}

const hubs = new WeakMap<SharedSerialPort, Map<string, FrameHub>>();

/** The hub for one framing on one port; it lives as long as the port. */
export function frameHub(port: SharedSerialPort, framingKey: string, createFramer: () => Framer): FrameHub {
  let byFraming = hubs.get(port);
  if (!byFraming) hubs.set(port, (byFraming = new Map()));
  let hub = byFraming.get(framingKey);
  if (!hub) byFraming.set(framingKey, (hub = new FrameHub(port, createFramer())));
  return hub;
}
