// Remote desired values: a command a Sink received on one of its connections (mqtt.commands) goes
// to the Actuator it names in the Sink's own namespace, which decides (spec.remote, tenant, bounds).
// Every command, accepted or refused (the transport's own refusals too: too large, busy, rate
// limited), is counted and logged here (refusals at most once per Sink, reason and 10 s, with the
// number left out); the transport publishes the outcome on the reply topic. Names from the topic are untrusted: one that is not a valid Actuator
// name is neither looked up, echoed nor used as a metric label.
import { resourceKey } from '../api/resource.js';
import type { CommandOutcome, RemoteCommand } from '../sinks/transport.js';
import type { Runtime } from './runtime.js';

const RESOURCE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Refusals are logged at most this often per Sink and reason (a flood must not flood the log); accepted ones always. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

/** Per agent: when each Sink and reason last logged a refusal, and how many went unlogged since. */
const refusalLogs = new WeakMap<Runtime, Map<string, { at: number; suppressed: number }>>();

export async function applyRemoteCommand(runtime: Runtime, sink: { namespace: string; name: string }, command: RemoteCommand): Promise<CommandOutcome> {
  const named = command.actuator.length <= 253 && RESOURCE_NAME.test(command.actuator);
  const runner = named ? runtime.actuators.get(resourceKey({ kind: 'Actuator', namespace: sink.namespace, name: command.actuator })) : undefined;
  const source = `Sink ${sink.namespace}/${sink.name}, tenant ${command.tenant ?? '(none)'}`;
  const outcome: CommandOutcome = command.refused
    ? command.refused
    : runner
      ? runner.remoteSet(command, source)
      : { accepted: false, reason: 'ActuatorNotFound', message: named ? `no Actuator ${command.actuator} in namespace ${sink.namespace} runs on this agent` : 'the topic names no valid Actuator' };
  const actuator = runner ? command.actuator : '';
  runtime.metrics.actuatorRemoteCommands.inc({ namespace: sink.namespace, actuator, result: outcome.accepted ? 'accepted' : 'refused', reason: outcome.reason });
  const fields = { sink: `${sink.namespace}/${sink.name}`, actuator: actuator || undefined, tenant: command.tenant, reason: outcome.reason, message: outcome.message };
  if (outcome.accepted) {
    runtime.logger.info(fields, 'remote value accepted');
    return outcome;
  }
  let lastRefusalLog = refusalLogs.get(runtime);
  if (!lastRefusalLog) refusalLogs.set(runtime, (lastRefusalLog = new Map()));
  const logKey = `${sink.namespace}/${sink.name}/${outcome.reason}`;
  const now = runtime.actuatorDeps.clock.now();
  const last = lastRefusalLog.get(logKey);
  if (last && now - last.at < REFUSAL_LOG_INTERVAL_MS) {
    last.suppressed++;
    return outcome;
  }
  if (lastRefusalLog.size > 1000) lastRefusalLog.clear();
  lastRefusalLog.set(logKey, { at: now, suppressed: 0 });
  runtime.logger.warn({ ...fields, ...(last?.suppressed ? { suppressed: last.suppressed } : {}) }, 'remote value refused');
  return outcome;
}
