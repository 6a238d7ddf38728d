// The fleet's view of a resource: each node's compact outcome (what a NodeReport holds) and the
// roll-up of all of them into the resource's status (desired/ready/degraded/unknown counts, the
// worst nodes, observedGeneration). Pure functions: the elected agent folds the reports of the
// whole fleet with them, a standalone agent folds its one node, so both show the same shape.

/** A node's state of one resource. Unknown is decided by the roll-up (a stale heartbeat), never reported. */
export type OutcomeState = 'Ready' | 'NotReady' | 'Degraded' | 'Unknown';

/** One entry of a NodeReport: one resource on one node. */
export interface ReportedResource {
  kind: string;
  namespace: string;
  name: string;
  state: Exclude<OutcomeState, 'Unknown'>;
  reason?: string;
  message?: string;
  observedGeneration?: number;
}

export interface NodeOutcome {
  name: string;
  state: OutcomeState;
  reason?: string;
  message?: string;
  observedGeneration?: number;
}

/** The fields the roll-up owns in a resource's status (schemas/definitions.json, Status). */
export interface RolledUpStatus {
  observedGeneration?: number;
  desired: number;
  ready: number;
  degraded: number;
  unknown: number;
  readyOfDesired: string;
  worstNodes: NodeOutcome[];
}

export const MAX_WORST_NODES = 5;
export const MAX_REASON_LENGTH = 128;
export const MAX_MESSAGE_LENGTH = 256;

interface ConditionLike {
  type: string;
  status: string;
  reason?: string;
  message?: string;
}

/** The reason a node's heartbeat is stale; shown on worst nodes. */
export const HEARTBEAT_STALE_REASON = 'NodeHeartbeatStale';

function cut(text: string | undefined, max: number): string | undefined {
  if (!text) return undefined;
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * The compact outcome of this node's status entry (conditions + observedGeneration): Degraded=True
 * wins, then Ready=True, else NotReady with Ready's reason. Messages are cut: they come from the
 * agent's own condition messages, which are already bounded and redacted (controller/status.ts).
 */
export function outcomeOf(entry: { observedGeneration?: number; conditions?: ConditionLike[] }): Omit<ReportedResource, 'kind' | 'namespace' | 'name'> {
  const conditions = entry.conditions ?? [];
  const degraded = conditions.find((condition) => condition.type === 'Degraded' && condition.status === 'True');
  const ready = conditions.find((condition) => condition.type === 'Ready');
  const deciding = degraded ?? ready;
  const state = degraded ? 'Degraded' : ready?.status === 'True' ? 'Ready' : 'NotReady';
  const outcome: Omit<ReportedResource, 'kind' | 'namespace' | 'name'> = { state };
  const reason = cut(deciding?.reason, MAX_REASON_LENGTH);
  const message = state === 'Ready' ? undefined : cut(deciding?.message, MAX_MESSAGE_LENGTH);
  if (reason) outcome.reason = reason;
  if (message) outcome.message = message;
  if (entry.observedGeneration !== undefined) outcome.observedGeneration = entry.observedGeneration;
  return outcome;
}

const SEVERITY: Record<OutcomeState, number> = { Unknown: 0, Degraded: 1, NotReady: 2, Ready: 3 };

/** Folds the outcomes of every node acting on one resource into its status. */
export function rollUp(outcomes: readonly NodeOutcome[]): RolledUpStatus {
  let ready = 0;
  let degraded = 0;
  let unknown = 0;
  let observedGeneration: number | undefined;
  const notReady: NodeOutcome[] = [];
  for (const outcome of outcomes) {
    if (outcome.state === 'Ready') ready++;
    else notReady.push(outcome);
    if (outcome.state === 'Degraded') degraded++;
    if (outcome.state === 'Unknown') unknown++;
    else if (outcome.observedGeneration !== undefined) observedGeneration = Math.min(observedGeneration ?? Infinity, outcome.observedGeneration);
  }
  // Worst first; ties by name so the list (and so the object) does not change without cause.
  notReady.sort((a, b) => SEVERITY[a.state] - SEVERITY[b.state] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const status: RolledUpStatus = {
    desired: outcomes.length,
    ready,
    degraded,
    unknown,
    readyOfDesired: `${ready}/${outcomes.length}`,
    worstNodes: notReady.slice(0, MAX_WORST_NODES).map((outcome) => ({ ...outcome })),
  };
  if (observedGeneration !== undefined) status.observedGeneration = observedGeneration;
  return status;
}
