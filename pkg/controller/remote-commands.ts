// Remote desired values: a command a Sink received on one of its connections (mqtt.commands) goes
// to the Actuator it names in the Sink's own namespace, which decides (spec.remote, tenant, bounds).
// Every command, accepted or refused, is counted and logged here; the transport publishes the
// outcome on the reply topic. Names from the topic are untrusted: one that is not a valid Actuator
// name is neither looked up, echoed nor used as a metric label.
import { resourceKey } from '../api/resource.js';
import type { CommandOutcome, RemoteCommand } from '../sinks/transport.js';
import type { Runtime } from './runtime.js';

const RESOURCE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export async function applyRemoteCommand(runtime: Runtime, sink: { namespace: string; name: string }, command: RemoteCommand): Promise<CommandOutcome> {
  const named = command.actuator.length <= 253 && RESOURCE_NAME.test(command.actuator);
  const runner = named ? runtime.actuators.get(resourceKey({ kind: 'Actuator', namespace: sink.namespace, name: command.actuator })) : undefined;
  const source = `Sink ${sink.namespace}/${sink.name}, tenant ${command.tenant ?? '(none)'}`;
  const outcome: CommandOutcome = runner
    ? runner.remoteSet(command, source)
    : { accepted: false, reason: 'ActuatorNotFound', message: named ? `no Actuator ${command.actuator} in namespace ${sink.namespace} runs on this agent` : 'the topic names no valid Actuator' };
  const actuator = runner ? command.actuator : '';
  runtime.metrics.actuatorRemoteCommands.inc({ namespace: sink.namespace, actuator, result: outcome.accepted ? 'accepted' : 'refused', reason: outcome.reason });
  const fields = { sink: `${sink.namespace}/${sink.name}`, actuator: actuator || undefined, tenant: command.tenant, reason: outcome.reason, message: outcome.message };
  if (outcome.accepted) runtime.logger.info(fields, 'remote value accepted');
  else runtime.logger.warn(fields, 'remote value refused');
  return outcome;
}
