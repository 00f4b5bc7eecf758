// Maps an operator command's argv to the command and its exit code. The agent stays the default.
import type { Runner } from '../exec/runner.js';

/** Where a command writes: data to stdout, diagnostics to stderr. */
export interface CommandIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** What the commands need from the outside world. */
export interface CommandDeps {
  readonly runner: Runner;
}

/** The operator commands; anything else on the command line runs the agent. */
export const OPERATOR_COMMANDS = ['validate', 'render', 'explain', 'status', 'cleanup'] as const;

/** One of the operator commands. */
export type OperatorCommand = (typeof OPERATOR_COMMANDS)[number];

/** Whether argv[0] names an operator command (rather than the agent's flags). */
export function isOperatorCommand(word: string | undefined): word is OperatorCommand {
  return (OPERATOR_COMMANDS as readonly string[]).includes(word ?? '');
}

/** Runs the operator command named by argv[0]; resolves to the process exit code. */
export async function runOperatorCommand(argv: readonly string[], io: CommandIo, deps: CommandDeps): Promise<number> {
  void deps;
  io.stderr(`ip-masq-agent: command "${argv[0] ?? ''}" is not available in this build\n`);
  return 2;
}
