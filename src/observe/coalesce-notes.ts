// A burst of events (a SIGHUP storm: 300,000 signals in 10 s) must not become a log line each: the
// lines would cost more than the events, and bury everything else in the log.

/**
 * Returns the function to call per event: the first event after a quiet window is noted at once;
 * those that follow within the window are counted and noted as one line when it ends, so a storm
 * of any length costs one line per window.
 */
export function coalesceNotes(opts: {
  /** Events within this long of a note are counted into the next one. */
  readonly windowMs: number;
  /** Calls `fn` once after `ms`. */
  readonly setTimer: (ms: number, fn: () => void) => void;
  /**
   * Writes the note: `count` is undefined for an event that comes after a quiet window (noted at
   * once, as before), else the number of events the window folded.
   */
  readonly note: (count: number | undefined) => void;
}): () => void {
  let open = false;
  let count = 0;
  /** Notes `n` (see the `note` option) and opens a window. */
  const note = (n: number | undefined): void => {
    open = true;
    count = 0;
    opts.note(n);
    opts.setTimer(opts.windowMs, close);
  };
  const close = (): void => {
    if (count > 0) note(count);
    else open = false;
  };
  return () => {
    if (open) count++;
    else note(undefined);
  };
}
