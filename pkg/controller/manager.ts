// The controller manager: turns store changes into workqueue keys and dispatches each key to its
// kind's reconciler, recording metrics. Certificates that change re-queue the Sinks using them.
// The Firmware reconciler (and with it the OTA coordinator, download and verify machinery) loads with
// the first Firmware reconciled: most agents never have one.
import { parseKey } from '../api/resource.js';
import type { Kind } from '../api/schemas.js';
import { messageOf, reasonOf } from '../api/errors.js';
import { WorkQueue, type Reconcile, type StoppableReconcile } from './workqueue.js';
import type { Runtime } from './runtime.js';
import { createSensorReconciler } from './reconcilers/sensor.js';
import { createSinkReconciler, certificatesOf } from './reconcilers/sink.js';
import { createActuatorReconciler } from './reconcilers/actuator.js';
import { updateRoutedConditions } from './routing-status.js';

const KIND_ORDER: Kind[] = ['Certificate', 'Sink', 'Sensor', 'Actuator', 'Firmware'];
/** How long shutdown waits for reconciles already running (starting a Sink opens its outbox). */
const STOP_GRACE_MS = 1000;

export class Manager {
  readonly queue: WorkQueue;
  private readonly reconcilers: Record<Kind, StoppableReconcile>;
  private routingTimer: NodeJS.Timeout | undefined;

  constructor(private readonly runtime: Runtime, reconcileCertificate: Reconcile) {
    this.reconcilers = {
      Sensor: createSensorReconciler(runtime),
      Sink: createSinkReconciler(runtime, (sinkKey, full) => this.onSinkFull(sinkKey, full)),
      Certificate: async (key) => {
        const result = await reconcileCertificate(key);
        // Sinks connect with the Certificate's identity: let them pick up the change.
        for (const sink of runtime.store.list('Sink')) {
          if (certificatesOf(runtime, sink).includes(key)) this.queue.add(sink.key);
        }
        return result;
      },
      // An update cut by a crash or restart is resumed by reconciling its Firmware (the coordinator
      // reads its record then), so loading here is soon enough for crash recovery too.
      Actuator: createActuatorReconciler(runtime),
      Firmware: lazyReconciler(async () => (await import('./reconcilers/firmware.js')).createFirmwareReconciler(runtime)),
    };
    this.queue = new WorkQueue((key) => this.reconcile(key), {
      // Certificates, then Sinks, then Sensors, then Actuators, then Firmware, in every change as in the initial
      // sync: a Sensor that arrives with its Sink starts once the Sink takes readings.
      rank: (key) => KIND_ORDER.indexOf(parseKey(key).kind),
      onResult: (key, { error, durationMs }) => {
        const kind = parseKey(key).kind;
        runtime.metrics.reconciles.inc({ kind, result: error ? 'error' : 'success' });
        runtime.metrics.reconcileDuration.observe({ kind }, durationMs / 1000);
        if (error) {
          const reason = reasonOf(error, 'ReconcileError');
          runtime.metrics.errorsLogged.inc({ component: 'controller', reason });
          runtime.logger.error({ key, reason, err: messageOf(error) }, 'reconcile failed; retrying with backoff');
          if (runtime.store.get(key)) {
            runtime.status.update(key, { conditions: [{ type: 'Ready', status: 'False', reason, message: `${messageOf(error)} (retrying)` }] });
          }
        }
      },
    });
    runtime.store.onChange((keys) => {
      if (!this.initialSyncApplied) return; // the initial sync is applied as a whole, in order
      // Sinks before Sensors, so that a Sensor declared with its Sink never reads into nowhere.
      for (const key of [...keys].sort((a, b) => KIND_ORDER.indexOf(parseKey(a).kind) - KIND_ORDER.indexOf(parseKey(b).kind))) this.queue.add(key);
      // A new or changed Certificate can change which Certificates a selector picks.
      if (keys.some((key) => key.startsWith('Certificate/'))) for (const sink of runtime.store.list('Sink')) this.queue.add(sink.key);
    });
    runtime.router.onRoutesChanged(() => this.scheduleRoutingStatus());
    runtime.store.onSynced(() => void this.applyInitialSync());
  }

  /** True once the first full listing has been reconciled: the agent is ready. */
  initialSyncApplied = false;

  /**
   * Certificates, then Sinks, then Sensors, each kind to completion: the first reading of every
   * Sensor already has its outboxes to go to.
   */
  private async applyInitialSync(): Promise<void> {
    for (const kind of KIND_ORDER) {
      for (const resource of this.runtime.store.list(kind)) this.queue.add(resource.key);
      await this.queue.whenIdle();
    }
    this.initialSyncApplied = true;
  }

  /** Reconciles every known key again (SIGHUP, POST /reload, node label change). */
  resyncAll(): void {
    for (const resource of this.runtime.store.list()) this.queue.add(resource.key);
    for (const key of this.runtime.sensors.keys()) this.queue.add(key);
    for (const key of this.runtime.sinks.keys()) this.queue.add(key);
    for (const key of this.runtime.actuators.keys()) this.queue.add(key);
  }

  /**
   * Takes no more keys, lets the reconciles under way finish (bounded), then ends the background
   * work reconcilers own (a firmware download stops and keeps its bytes for the next start), so
   * that the runners the agent stops next are all the runners there are.
   */
  async stop(): Promise<void> {
    await this.queue.stop(STOP_GRACE_MS);
    if (this.routingTimer) clearTimeout(this.routingTimer);
    await Promise.all(Object.values(this.reconcilers).map((reconciler) => reconciler.stop?.()));
  }

  private async reconcile(key: string) {
    const ref = parseKey(key);
    const kind = ref.kind;
    const result = await this.reconcilers[kind](key);
    // Gone: its gauges leave /metrics (a deleted Sink's queue depth would stay on dashboards), for
    // every kind alike; its counters stay true and stay.
    if (!this.runtime.store.get(key)) await this.runtime.metrics.forgetResource(kind.toLowerCase(), ref);
    // A Sensor changes routing only through the router (which reports it); after every Sensor of a
    // resync, a pass over all Sensors would cost O(sensors²).
    if (kind !== 'Sensor') this.scheduleRoutingStatus();
    return result;
  }

  private scheduleRoutingStatus(): void {
    if (this.routingTimer) return;
    this.routingTimer = setTimeout(() => {
      this.routingTimer = undefined;
      updateRoutedConditions(this.runtime);
    }, 20);
    this.routingTimer.unref();
  }

  /** whenFull: block pauses exactly the Sensors that feed the full sink. */
  private onSinkFull(sinkKey: string, full: boolean): void {
    for (const sensorKey of this.runtime.router.sensorsOf(sinkKey)) this.runtime.sensors.get(sensorKey)?.setBlocked(sinkKey, full);
  }
}

/** A reconciler created on its first key; a failed load is tried again with the next one. */
function lazyReconciler(load: () => Promise<StoppableReconcile>): StoppableReconcile {
  let loading: Promise<StoppableReconcile> | undefined;
  let loaded: StoppableReconcile | undefined;
  const reconcile = async (key: string) => {
    loading ??= load().then(
      (reconciler) => (loaded = reconciler),
      (error: unknown) => {
        loading = undefined;
        throw error;
      },
    );
    return (await loading)(key);
  };
  // Never loaded: nothing of it runs, nothing to stop.
  return Object.assign(reconcile, { stop: async () => loaded?.stop?.() });
}
