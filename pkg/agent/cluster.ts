// Cluster mode wiring, loaded only when the agent runs against a Kubernetes API server: it brings
// @kubernetes/client-node (~80 MB of RSS), which standalone mode must never pay for.
import { parseKey } from '../api/resource.js';
import type { Runtime } from '../controller/runtime.js';
import type { Logger } from '../observability/logger.js';
import type { ResourceSource } from '../sources/source.js';
import type { AgentOptions } from './agent.js';
import type { Authenticator } from '../admin/auth.js';
import { tokenReviewAuthenticator } from '../admin/token-review.js';
import { credentialSecretsOf } from '../controller/reconcilers/sink-credentials.js';

export interface ClusterMode {
  source: ResourceSource;
  nodeLabels(): Record<string, string>;
  onNodeLabels(callback: (labels: Record<string, string>) => void): void;
  /** With --admin-token-review: admin API clients authenticated by the API server. */
  tokenReview?: Authenticator;
  close(): Promise<void>;
}

export async function startClusterMode(options: AgentOptions, runtime: Runtime, logger: Logger): Promise<ClusterMode> {
  const { connectKubernetes, createKubernetesSource } = await import('../sources/kubernetes/source.js');
  const { createKubernetesStatusWriter } = await import('../controller/status-writer-kubernetes.js');
  const connection = await connectKubernetes({ kubeconfigFile: options.kubeconfig, inCluster: options.inCluster });
  const source = await createKubernetesSource({ connection, namespace: options.namespace, nodeName: options.nodeName, logger });
  const writer = await createKubernetesStatusWriter({ connection, nodeName: options.nodeName, logger: logger.child({ component: 'status-writer' }) });

  // Each agent writes only its own status.nodes[] entry; writes never block the data path. An entry
  // that goes while its object stays (the nodeSelector stopped matching this node) is withdrawn on
  // the server too, or a stale Ready=True from this node would remain there for ever.
  runtime.status.onChange((key, entry, conditionFlipped) => {
    const { kind, namespace, name } = parseKey(key);
    if (entry) writer.write({ kind, namespace, name }, entry, conditionFlipped);
    else if (runtime.store.get(key)) writer.withdraw({ kind, namespace, name });
    else writer.forget({ kind, namespace, name });
  });

  // Certificates may take their material from Secrets; a Secret update rotates like a file change.
  runtime.secrets = { get: (namespace, name) => source.secret(namespace, name) };
  source.onSecretChange(({ namespace, name }) => {
    for (const certificate of runtime.store.list('Certificate')) {
      if (certificate.namespace === namespace && certificate.object?.spec.secretRef?.name === name) runtime.enqueue(certificate.key);
    }
    // Sinks whose broker credentials come from it reconnect with the new values.
    for (const sink of runtime.store.list('Sink')) {
      if (sink.namespace === namespace && sink.object && credentialSecretsOf(sink.object.spec).includes(name)) runtime.enqueue(sink.key);
    }
  });

  return {
    source,
    nodeLabels: () => source.nodeLabels(),
    onNodeLabels: (callback) => void source.onNodeLabels(callback),
    tokenReview: options.policy?.admin.tokenReview ? tokenReviewAuthenticator(connection) : undefined,
    close: () => writer.close(),
  };
}
