// Cluster mode: Kubernetes identities for the admin API, the way kube-rbac-proxy does it. A bearer
// token is sent to the API server's TokenReview; if it authenticates a user (a ServiceAccount such
// as Prometheus's), a SubjectAccessReview asks whether that user may use the request's path, as a
// non-resource URL with the lowercase HTTP method as verb (what the API server itself does for
// /metrics or /healthz). So an operator grants access with ordinary RBAC:
//   rules: [{ nonResourceURLs: ["/metrics", "/api/v1/resources"], verbs: ["get"] }]
// Answers are cached briefly, so a scraper does not cost two API calls per scrape; a failed call
// denies the request and is not cached.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { bearerToken, type AuthResult, type Authenticator } from './auth.js';

/** The one call needed from a Kubernetes connection (pkg/sources/kubernetes/connection.ts). */
export interface ReviewApi {
  request(method: string, path: string, options: { body: string }): Promise<{ status: number; body: unknown }>;
}

export interface TokenReviewOptions {
  /** How long an answer is reused; default 10 s. */
  cacheMs?: number;
  /** Bounds the cache; it is emptied when full. Default 1000 entries. */
  maxEntries?: number;
  now?: () => number;
}

interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

const TOKEN_REVIEWS = '/apis/authentication.k8s.io/v1/tokenreviews';
const SUBJECT_ACCESS_REVIEWS = '/apis/authorization.k8s.io/v1/subjectaccessreviews';

export function tokenReviewAuthenticator(api: ReviewApi, options: TokenReviewOptions = {}): Authenticator {
  const cacheMs = options.cacheMs ?? 10_000;
  const maxEntries = options.maxEntries ?? 1000;
  const now = options.now ?? Date.now;
  const cache = new Map<string, { result: AuthResult; until: number }>();

  const post = async (path: string, body: unknown): Promise<Record<string, any>> => {
    const response = await api.request('POST', path, { body: JSON.stringify(body) });
    if (response.status !== 201 && response.status !== 200) throw new Error(`POST ${path} answered ${response.status}`);
    return (response.body ?? {}) as Record<string, any>;
  };

  const review = async (token: string, path: string, verb: string): Promise<AuthResult> => {
    const authn = await post(TOKEN_REVIEWS, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } });
    if (authn.status?.authenticated !== true) return { allowed: false, status: 401, message: 'the bearer token was not accepted' };
    const user = (authn.status.user ?? {}) as UserInfo;
    const authz = await post(SUBJECT_ACCESS_REVIEWS, {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: { user: user.username, uid: user.uid, groups: user.groups, extra: user.extra, nonResourceAttributes: { path, verb } },
    });
    if (authz.status?.allowed === true) return { allowed: true };
    // The user's name is the operator's to see (it is no secret), and says which RBAC rule is missing.
    return { allowed: false, status: 403, message: `${user.username ?? 'the user'} may not ${verb} ${path}` };
  };

  return {
    async check(request: IncomingMessage): Promise<AuthResult> {
      const token = bearerToken(request);
      if (token === undefined) return { allowed: false, status: 401, message: 'this admin API needs Authorization: Bearer <token>' };
      const path = new URL(request.url ?? '/', 'http://localhost').pathname;
      const verb = (request.method ?? 'GET').toLowerCase();
      // Keyed by the token's digest: the cache never holds a token.
      const key = `${createHash('sha256').update(token).digest('hex')} ${verb} ${path}`;
      const cached = cache.get(key);
      if (cached && cached.until > now()) return cached.result;
      let result: AuthResult;
      try {
        result = await review(token, path, verb);
      } catch {
        return { allowed: false, status: 401, message: 'the bearer token could not be reviewed by the Kubernetes API server' };
      }
      if (cache.size >= maxEntries) cache.clear();
      cache.set(key, { result, until: now() + cacheMs });
      return result;
    },
    async refresh() {
      cache.clear();
    },
  };
}
