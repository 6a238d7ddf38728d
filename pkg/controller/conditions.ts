// Kubernetes-style conditions. lastTransitionTime moves only when a condition's status flips, so it
// tells when the state last changed, not when the agent last looked.

export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface Condition {
  type: string;
  status: ConditionStatus;
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export type ConditionUpdate = Omit<Condition, 'lastTransitionTime'>;

/** Sets or replaces one condition; returns true when its status flipped (or it is new). */
export function setCondition(conditions: Condition[], update: ConditionUpdate, now: Date): boolean {
  const index = conditions.findIndex((condition) => condition.type === update.type);
  if (index === -1) {
    conditions.push({ ...update, lastTransitionTime: now.toISOString() });
    return true;
  }
  const previous = conditions[index];
  const flipped = previous.status !== update.status;
  conditions[index] = { ...update, lastTransitionTime: flipped ? now.toISOString() : previous.lastTransitionTime };
  return flipped;
}

export function removeCondition(conditions: Condition[], type: string): boolean {
  const index = conditions.findIndex((condition) => condition.type === type);
  if (index === -1) return false;
  conditions.splice(index, 1);
  return true;
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((condition) => condition.type === type);
}
