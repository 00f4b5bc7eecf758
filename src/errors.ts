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

/** A config that cannot be used; carries every issue found, not just the first. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly issues: readonly ConfigIssue[]) {
    super(issues.map(formatIssue).join('\n'));
  }
}

/** How a failed command is classified, so callers can retry or explain. */
export type CommandFailure = 'lock-busy' | 'permission-denied' | 'not-found' | 'not-installed' | 'timeout' | 'other';

/** A child process that failed: what ran, how it ended, what it said. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | null,
    readonly stderr: string,
    readonly failure: CommandFailure,
    message: string,
  ) {
    super(message);
  }
}

/** Command-line usage problems (unknown flag, bad value). */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}
