// Reloads (POST /reload, SIGHUP) arrive in bursts: a script, a config-management run, a client
// retrying. Each one re-reads every manifest and reconciles every resource, so running them side by
// side multiplies the work by the burst size for the same result.

/**
 * Wraps `work` so that at most one run is in progress and at most one is queued. A call while a run
 * is in progress joins the queued follow-up (started when the current run ends, because the current
 * run may have read its input before the caller changed it); every caller gets the outcome of a run
 * that started after it called.
 */
export function coalesced(work: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const start = (): Promise<void> => {
    const run: Promise<void> = work().finally(() => {
      if (running === run) running = undefined;
    });
    running = run;
    return run;
  };
  return () => {
    if (!running) return start();
    queued ??= running
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return start();
      });
    return queued;
  };
}
