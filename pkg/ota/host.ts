// What the agent gives the Firmware reconciler: the state dir and, in standalone mode, the A/B
// slot updater for `target: agent`.
import type { AgentUpdater } from './coordinator.js';

export interface OtaHost {
  /** OTA records and artifacts live in `<stateDir>/ota/`. */
  stateDir: string;
  /** Standalone mode only; cluster mode updates the agent through its DaemonSet image. */
  agent?: AgentUpdater;
}
