// One named Secret in one namespace, watched with the field selector metadata.name=<name>, so RBAC
// can grant exactly that Secret (a Role rule with resourceNames: [name]; list and watch honour
// resourceNames when the request carries that field selector). Used for the Firmware trust store:
// the operator's Secret in the agent's own namespace, nothing else.
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../../observability/logger.js';
import type { KubernetesConnection } from './connection.js';
import { SupervisedInformer, type BackoffOptions } from './informer.js';

export interface WatchedSecret {
  /** The Secret's decoded data now; undefined while it does not exist (or before the first list). */
  data(): Record<string, Buffer> | undefined;
  /** Called when the Secret appears, changes or goes. */
  onChange(callback: () => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function watchSecret(options: { connection: KubernetesConnection; namespace: string; name: string; logger: Logger; backoff?: BackoffOptions }): WatchedSecret {
  let current: Record<string, Buffer> | undefined;
  const callbacks: (() => void)[] = [];
  const changed = () => {
    for (const callback of callbacks) {
      try {
        callback();
      } catch (error) {
        options.logger.error({ err: String(error) }, 'secret change callback threw');
      }
    }
  };
  const informer = new SupervisedInformer({
    connection: options.connection,
    path: `/api/v1/namespaces/${encodeURIComponent(options.namespace)}/secrets`,
    fieldSelector: `metadata.name=${options.name}`,
    logger: options.logger,
    backoff: options.backoff,
    handlers: {
      upsert(object: KubernetesObject & { data?: Record<string, string> }) {
        if (object.metadata?.name !== options.name) return;
        const data: Record<string, Buffer> = {};
        for (const [key, value] of Object.entries(object.data ?? {})) data[key] = Buffer.from(value, 'base64');
        current = data;
        changed();
      },
      remove(object: KubernetesObject) {
        if (object.metadata?.name !== options.name) return;
        current = undefined;
        changed();
      },
    },
  });
  return {
    data: () => current,
    onChange: (callback) => void callbacks.push(callback),
    start: () => informer.start(),
    stop: () => informer.stop(),
  };
}
