// Kubernetes label selector semantics: matchLabels AND every matchExpression; {} matches everything.
import type { LabelSelector } from '../api/resource.js';

export function matchesSelector(selector: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!selector) return true;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  for (const expression of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, expression.key);
    const values = expression.values ?? [];
    switch (expression.operator) {
      case 'In':
        if (!has || !values.includes(labels[expression.key])) return false;
        break;
      case 'NotIn':
        if (has && values.includes(labels[expression.key])) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

/** nodeSelector: every key/value must be on the node (Kubernetes' Pod nodeSelector). */
export function matchesNodeSelector(nodeSelector: Record<string, string> | undefined, nodeLabels: Record<string, string>): boolean {
  return Object.entries(nodeSelector ?? {}).every(([key, value]) => nodeLabels[key] === value);
}
