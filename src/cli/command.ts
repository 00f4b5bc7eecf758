// What every operator command shares: where it writes, what it needs, its exit codes, and how
// a usage error is reported.
import type { Runner } from '../exec/runner.js';
import type { Logger } from '../observe/log.js';
import { UsageError } from '../errors.js';
import type { ReadText } from './command-config.js';

/** Where a command writes: data to stdout, diagnostics to stderr. */
export interface CommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** What the commands need from the outside world; `main` passes the real ones, tests fakes. */
export interface CommandDeps {
  /** Runs iptables, nft, ...; status and cleanup use it (inside a namespace in tests). */
  readonly runner: Runner;
  /** Reads a config file's text; defaults to the config loader's reader. */
  readonly readText?: ReadText;
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

/** Prints JSON data with a trailing newline. */
export function writeJson(io: CommandIo, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

/** Reports a usage error on stderr, pointing at the command's help; returns exit code 2. */
export function reportUsage(io: CommandIo, command: string, e: UsageError): number {
  io.stderr(`ip-masq-agent ${command}: ${e.message.replace(new RegExp(`^${command}: `), '')}\nRun 'ip-masq-agent ${command} --help' for usage.\n`);
  return EXIT.usage;
}

/** Runs a command body, turning a UsageError into exit code 2. */
export async function withUsageErrors(io: CommandIo, command: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) return reportUsage(io, command, e);
    throw e;
  }
}

/** A logger that drops everything: the commands report in their own words, not as log lines. */
export const silentLog: Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined, trace: () => undefined };
