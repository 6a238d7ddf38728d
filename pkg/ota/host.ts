// What the agent gives the Firmware reconciler: the state dir, the operator's trust store and, in
// standalone mode, the A/B slot updater for `target: agent`.
import type { AgentUpdater } from './coordinator.js';
import type { TrustStore } from './trust.js';

export interface OtaHost {
  /** OTA records and artifacts live in `<stateDir>/ota/`. */
  stateDir: string;
  /** Where the keys that verify Firmware come from (trust.ts); none configured refuses every Firmware. */
  trust: TrustStore;
  /** Called with a callback that re-reconciles Firmware when the trust store changes (cluster: the Secret). */
  onTrustChange?(callback: () => void): void;
  /** Standalone mode only; cluster mode updates the agent through its DaemonSet image. */
  agent?: AgentUpdater;
}
