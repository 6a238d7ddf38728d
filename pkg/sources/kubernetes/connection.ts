// One connection to the Kubernetes API, shared by the cluster source and the status writer.
//
// @kubernetes/client-node costs about 80 MB of RSS to load, so it is imported only here, inside
// `connectKubernetes`, and only type imports (erased at compile time) appear at module level. The
// standalone agent never calls this function and never pays for the library.
//
// Plain requests (list, status apply) go through node:http(s) with the options the KubeConfig
// computes (CA, client certificate, bearer token, proxy agent): the generated API clients add
// nothing we need and would deserialize core objects differently from the raw watch events.
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';

export type KubernetesClientModule = typeof import('@kubernetes/client-node');

export interface ConnectOptions {
  /** A kubeconfig file (its current context). */
  kubeconfigFile?: string;
  /** The service account of the pod this runs in. */
  inCluster?: boolean;
}

export interface ApiResponse {
  status: number;
  body: unknown;
}

export interface ApiRequestOptions {
  query?: Record<string, string | undefined>;
  body?: string;
  contentType?: string;
  timeoutMs?: number;
}

export interface KubernetesConnection {
  /** The loaded client library (ListWatch, Watch...). */
  readonly client: KubernetesClientModule;
  readonly config: KubeConfig;
  /** The API server URL of the current context. */
  readonly server: string;
  /** The namespace of the current context (in cluster: the pod's namespace). */
  readonly contextNamespace: string | undefined;
  request(method: string, path: string, options?: ApiRequestOptions): Promise<ApiResponse>;
}

const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
const DEFAULT_TIMEOUT_MS = 30_000;
/** Bodies we read are lists of a few kinds; anything larger than this is a misbehaving server. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export async function connectKubernetes(options: ConnectOptions): Promise<KubernetesConnection> {
  if (!options.kubeconfigFile && !options.inCluster) throw new Error('connectKubernetes: give kubeconfigFile or inCluster');
  const client = await import('@kubernetes/client-node');
  const config = new client.KubeConfig();
  if (options.kubeconfigFile) config.loadFromFile(options.kubeconfigFile);
  else config.loadFromCluster();
  const cluster = config.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const contextNamespace = currentNamespace(config, options.inCluster === true);
  const server = cluster.server.replace(/\/+$/, '');

  async function request(method: string, path: string, requestOptions: ApiRequestOptions = {}): Promise<ApiResponse> {
    const url = new URL(server + path);
    for (const [key, value] of Object.entries(requestOptions.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, value);
    }
    const tlsAndAuth: https.RequestOptions = {};
    await config.applyToHTTPSOptions(tlsAndAuth);
    const headers: Record<string, string> = { accept: 'application/json' };
    for (const [key, value] of Object.entries(tlsAndAuth.headers ?? {})) {
      if (typeof value === 'string') headers[key] = value;
    }
    if (requestOptions.body !== undefined) {
      headers['content-type'] = requestOptions.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(requestOptions.body));
    }
    const transport = url.protocol === 'http:' ? http : https;
    return new Promise<ApiResponse>((resolve, reject) => {
      const req = transport.request(
        url,
        { ...tlsAndAuth, method, headers, timeout: requestOptions.timeoutMs ?? DEFAULT_TIMEOUT_MS },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) return req.destroy(new Error(`${method} ${path}: response larger than ${MAX_RESPONSE_BYTES} bytes`));
            chunks.push(chunk);
          });
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let body: unknown = text;
            try {
              body = text ? JSON.parse(text) : undefined;
            } catch {
              // Not JSON (a proxy's error page): keep the text for the error message.
            }
            resolve({ status: res.statusCode ?? 0, body });
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on('error', reject);
      req.end(requestOptions.body);
    });
  }

  return { client, config, server, contextNamespace, request };
}

function currentNamespace(config: KubeConfig, inCluster: boolean): string | undefined {
  if (inCluster) {
    try {
      return readFileSync(SERVICE_ACCOUNT_NAMESPACE_FILE, 'utf8').trim() || undefined;
    } catch {
      return undefined;
    }
  }
  const context = config.getContextObject(config.getCurrentContext());
  return context?.namespace || undefined;
}

/** An error carrying the HTTP status and the API's Status message, for retry decisions and logs. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reason?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export function apiErrorFrom(method: string, path: string, response: ApiResponse): ApiError {
  const body = response.body as { message?: unknown; reason?: unknown } | string | undefined;
  const detail =
    typeof body === 'object' && body && typeof body.message === 'string' ? body.message : typeof body === 'string' ? body.slice(0, 200) : '';
  const reason = typeof body === 'object' && body && typeof body.reason === 'string' ? body.reason : undefined;
  return new ApiError(response.status, `${method} ${path}: HTTP ${response.status}${detail ? `: ${detail}` : ''}`, reason);
}
