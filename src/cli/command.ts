// What every operator command shares: where it writes, what it needs, its exit codes. Light on
// purpose: `main` reaches it through index.ts, so it must not import the config parser (and yaml).
import type { CleanupTarget } from '../backends/backend.js';
import type { openBackendReadOnly } from '../backends/select.js';
import type { Runner } from '../exec/runner.js';
import type { Family } from '../net/cidr.js';
import type { Logger } from '../observe/log.js';

/** Where a command writes: data to stdout, diagnostics to stderr. */
export interface CommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** What the commands need from the outside world; `main` passes the real ones, tests fakes. */
export interface CommandDeps {
  /** Runs iptables, nft, ...; status and cleanup use it (inside a namespace in tests). */
  readonly runner: Runner;
  /** Opens the backend the agent would use, read-only (status, explain --counts); tests pass a fake. */
  readonly openBackend?: typeof openBackendReadOnly;
  /** What cleanup removes; tests replace the real targets. */
  readonly targets?: (chain: string, runner: Runner) => CleanupTarget[];
}

/** An operator command: argv after the command name in, exit code out. */
export type CommandFn = (argv: readonly string[], io: CommandIo, deps: CommandDeps) => Promise<number>;

/** Exit codes shared by the commands (each command's help says which it uses). */
export const EXIT = {
  /** Valid, in sync, done. */
  ok: 0,
  /** The answer is "no": invalid config, drift, something left behind. */
  failed: 1,
  /** The command line is wrong. */
  usage: 2,
  /** The command could not look: tool missing, permission denied, unreadable config. */
  cannotCheck: 3,
} as const;

/** A family as people write it, in every command's text output. */
export const FAMILY_NAME: Readonly<Record<Family, string>> = { ipv4: 'IPv4', ipv6: 'IPv6' };

/** Prints JSON data with a trailing newline. */
export function writeJson(io: CommandIo, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

/** A logger that drops everything: the commands report in their own words, not as log lines. */
export const silentLog: Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined, trace: () => undefined };
