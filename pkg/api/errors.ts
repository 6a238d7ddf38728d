// Errors carry a stable CamelCase `code`; condition reasons and metric labels come from it.

export class SensorletError extends Error {
  readonly code: string;
  /** A terminal error is not retried by the workqueue: only a new spec can fix it. */
  readonly terminal: boolean;

  constructor(code: string, message: string, options: { terminal?: boolean; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SensorletError';
    this.code = code;
    this.terminal = options.terminal ?? false;
  }
}

/**
 * A command-line flag the agent cannot start with: an operator's mistake, not a fault. The CLI
 * prints the message (which names the flag) on one line and exits 2, as for any usage error.
 */
export class FlagError extends SensorletError {
  constructor(
    readonly flag: string,
    code: string,
    message: string,
  ) {
    super(code, message, { terminal: true });
    this.name = 'FlagError';
  }
}

/** The condition reason for any thrown value. */
export function reasonOf(error: unknown, fallback = 'Error'): string {
  if (error instanceof SensorletError) return error.code;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^[A-Z][A-Za-z0-9]*$/.test(code)) return code;
  return fallback;
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
