/** One problem found in a config source. */
export interface ConfigIssue {
  /** File path, or `<flags>` / `<stdin>`. */
  readonly source: string;
  /** Key path such as `nonMasqueradeCIDRs[2]`; empty for the whole document. */
  readonly path: string;
  /** 1-based line and column, where the input has lines. */
  readonly line?: number;
  readonly column?: number;
  readonly message: string;
}

/** Formats an issue as `file:line:col: path: message`. */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line === undefined ? issue.source : `${issue.source}:${issue.line}:${issue.column ?? 1}`;
  return issue.path ? `${where}: ${issue.path}: ${issue.message}` : `${where}: ${issue.message}`;
}

/** The most issues one ConfigError carries: a file of 50,000 bad entries must not make a 5 MB log line. */
export const MAX_REPORTED_ISSUES = 20;

/** A config that cannot be used; carries every issue found (up to MAX_REPORTED_ISSUES), not just the first. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly issues: readonly ConfigIssue[];
  constructor(issues: readonly ConfigIssue[]) {
    const rest = issues.slice(MAX_REPORTED_ISSUES);
    const more = rest[0] && { source: rest[0].source, path: '', message: `and ${rest.length} more error${rest.length === 1 ? '' : 's'} not shown; fix the ones above first` };
    const shown = more ? [...issues.slice(0, MAX_REPORTED_ISSUES), more] : issues;
    super(shown.map(formatIssue).join('\n'));
    this.issues = shown;
  }
}

/**
 * How a failed command is classified, so callers can retry or explain. `resource`: the command
 * could not even start (no file descriptors, processes or memory left: EMFILE, ENFILE, EAGAIN).
 */
export type CommandFailure = 'lock-busy' | 'permission-denied' | 'not-found' | 'not-installed' | 'timeout' | 'resource' | 'other';

/** A restating error's details: `base` as the cause, its signal and duration. */
export const restated = (base: CommandError) => ({ cause: base, signal: base.signal, durationMs: base.durationMs });

/** A child process that failed: what ran, how it ended, what it said. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  /** The signal that ended the command, or null. */
  readonly signal: NodeJS.Signals | null;
  /** Whether the runner killed it at its deadline. */
  get timedOut(): boolean {
    return this.failure === 'timeout';
  }
  /** How long it ran, in milliseconds; undefined when it never started. */
  readonly durationMs: number | undefined;
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly failure: CommandFailure,
    message: string,
    /** How it ended beyond its exit code, and the error it restates (a backend's message around the runner's), if any. */
    details: { readonly cause?: unknown } & Partial<Pick<CommandError, 'signal' | 'durationMs'>> = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.signal = details.signal ?? null;
    this.durationMs = details.durationMs;
  }

  /** The same failure in other words; this error becomes its cause. */
  restate(message: string): CommandError {
    return new CommandError(this.argv, this.exitCode, this.stderr, this.failure, message, restated(this));
  }
}

/** What a thrown value says: an Error's message, or the value as text. */
export const errorMessage = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** Command-line usage problems (unknown flag, bad value). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
