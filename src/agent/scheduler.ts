// When the agent syncs, kept apart from what a sync does (as kube-proxy's BoundedFrequencyRunner):
// triggers (start, the timer, callers such as the watcher and SIGHUP), one run at a time, and a
// retry with backoff after a failed run.
import { RETRY_REASON } from '../observe/agent-status.js';
import type { Clock } from './clock.js';

/** The delay before retry number `failures` (1, 2, ...): 1 s, doubled each time, never past the resync interval. */
export function retryDelayMs(failures: number, resyncIntervalMs: number): number {
  return Math.min(1000 * 2 ** Math.min(Math.max(failures - 1, 0), 30), resyncIntervalMs);
}

/** A pending retry: how soon it runs, and how many runs in a row failed. */
export type Retry = { readonly afterMs: number; readonly failures: number };

/** A run tells whether it failed (as kube-proxy's sync calls RetryAfter) and learns the retry it gets, for its report. */
export type Settle = (failed: boolean) => Retry | undefined;

/** Runs one thing at a time, when triggered and at its interval. */
export type Scheduler<T> = ReturnType<typeof createScheduler<T>>;

/**
 * Creates a scheduler; nothing runs before start() or sync(). `run` is one run: it calls `settle`
 * once, when it knows whether it failed; `intervalMs` is asked after each run (a new config may change it).
 */
export function createScheduler<T>(o: { readonly clock: Clock; readonly run: (reason: string, settle: Settle) => Promise<T>; readonly intervalMs: () => number }) {
  let retry: Retry | undefined;
  let started = false;
  let inflight: Promise<T> | undefined;
  let queued: Promise<T> | undefined;
  let cancelTimer: (() => void) | undefined;

  const settle: Settle = (failed) => {
    const failures = failed ? (retry?.failures ?? 0) + 1 : 0;
    retry = failed ? { afterMs: retryDelayMs(failures, o.intervalMs()), failures } : undefined;
    return retry;
  };
  const arm = (): void => {
    cancelTimer?.();
    // After a failure the next run comes sooner (backoff), not a whole interval later.
    const [ms, reason] = retry ? [retry.afterMs, RETRY_REASON] : [o.intervalMs(), 'resync'];
    cancelTimer = started ? o.clock.setTimer(ms, () => void sync(reason)) : undefined;
  };
  const runNow = (reason: string): Promise<T> => {
    const p: Promise<T> = o.run(reason, settle).finally(() => {
      if (inflight === p) inflight = undefined;
      arm();
    });
    return (inflight = p);
  };
  const sync = (reason: string): Promise<T> => {
    if (!inflight) return runNow(reason);
    queued ??= inflight
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return runNow(reason);
      });
    return queued;
  };

  return {
    /** Runs now, or once after the running run: every call during a run folds into that one. */
    sync,
    /** Runs now (reason `start`), then at the interval, or sooner after a failure. */
    start: () => {
      started = true;
      return sync('start');
    },
    /** Stops the timer and waits for a running run. */
    stop: async (): Promise<void> => {
      started = false;
      arm();
      await inflight?.catch(() => undefined);
    },
  };
}
