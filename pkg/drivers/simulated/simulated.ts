// The simulated driver: synthetic values for quick starts, demos and tests. `counter` is exact
// (min, min+step, min+2*step, ...) because the durability tests count on it to find lost readings.
import type { Sample } from '../../api/reading.js';
import { parseDuration } from '../../api/units.js';
import type { Sensor } from '../../api/resource.js';
import type { Driver, DriverContext, DriverFactory } from '../driver.js';
import { registerDriver } from '../registry.js';

export type SimulatedConfig = NonNullable<Sensor['spec']['driver']['simulated']>;

export function createSimulatedDriver(config: SimulatedConfig, context: DriverContext): Driver {
  const waveform = config.waveform ?? 'sine';
  const min = config.min ?? 0;
  const max = config.max ?? 100;
  const step = config.step ?? 1;
  const burst = config.samplesPerRead ?? 1;
  const periodMs = config.period ? parseDuration(config.period) : 60_000;
  let produced = 0;

  const valueAt = (time: number): number => {
    switch (waveform) {
      case 'constant':
        return min;
      case 'counter':
        return min + produced * step;
      case 'random':
        return min + Math.random() * (max - min);
      case 'sine':
        return min + ((max - min) * (1 + Math.sin((2 * Math.PI * time) / periodMs))) / 2;
    }
  };

  return {
    async read(): Promise<Sample[]> {
      const now = context.clock.now();
      const spacing = context.intervalMs / burst;
      const samples: Sample[] = new Array(burst);
      for (let i = 0; i < burst; i++) {
        // A burst is what a FIFO holds: samples spread over the last interval, oldest first.
        const time = Math.round(now - (burst - 1 - i) * spacing);
        samples[i] = { value: valueAt(time), time };
        produced++;
      }
      return samples;
    },
    async close() {},
  };
}

export const simulatedDriver: DriverFactory<SimulatedConfig> = {
  name: 'simulated',
  validate(config, path) {
    if (config.min !== undefined && config.max !== undefined && config.min > config.max) {
      return [{ path: `${path}.min`, message: `min (${config.min}) must not exceed max (${config.max})`, reason: 'InvalidSpec' }];
    }
    return [];
  },
  create: createSimulatedDriver,
  samplesPerRead: (config) => config.samplesPerRead ?? 1,
};

registerDriver(simulatedDriver);
