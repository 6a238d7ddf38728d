// Credentials never leave the agent through what it shows: status, facts, logs, metrics, API answers.
// A URL is shown with the password of its userinfo replaced (`mqtt://user:***@host`); the user name
// stays, because it tells the operator which account is meant and is not a secret.

const MASK = '***';
/**
 * scheme://user:password@ inside any text. The user stops at the first ':'; the password runs to the
 * last '@' before the host (an unescaped '@' in a password is masked whole, as URL parsers read it).
 */
const USERINFO_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/?#@:"'<>]*):([^\s/?#"'<>]*)@/gi;

/** The text with the password of every URL in it masked. */
export function redactCredentials(text: string): string {
  if (!text.includes('@')) return text;
  return text.replace(USERINFO_PASSWORD, (_match, scheme: string, user: string) => `${scheme}${user}:${MASK}@`);
}

/** A copy of a value (a spec) with every string passed through redactCredentials; the value itself is not changed. */
export function redactCredentialsIn<T>(value: T): T {
  if (typeof value === 'string') return redactCredentials(value) as T;
  if (Array.isArray(value)) return value.map((item) => redactCredentialsIn(item)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactCredentialsIn(item)])) as T;
  }
  return value;
}

/** Whether a URL carries a password in its userinfo (a username alone is allowed). */
export function urlHasPassword(url: string): boolean {
  try {
    return new URL(url).password !== '';
  } catch {
    return redactCredentials(url) !== url;
  }
}
