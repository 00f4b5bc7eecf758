// Maps an operator command's argv to the command and its exit code. The agent stays the
// default: `main` calls this only when argv[0] names one of these commands.
import { CommandError, ConfigError } from '../errors.js';
import { EXIT, type CommandDeps, type CommandFn, type CommandIo } from './command.js';

/** The operator commands; anything else on the command line runs the agent. */
export const OPERATOR_COMMANDS = ['validate', 'render', 'explain', 'status', 'cleanup'] as const;

/** One of the operator commands. */
export type OperatorCommand = (typeof OPERATOR_COMMANDS)[number];

// Each command's module is imported only when it runs: the agent, `--help` and `--version` never
// load them (their help texts and parsers cost start-up time and memory; docs/performance.md).
const COMMANDS: Record<OperatorCommand, { load: () => Promise<CommandFn>; summary: string; unexpectedExit: number }> = {
  validate: { load: async () => (await import('./validate.js')).runValidate, summary: 'check config files or a ConfigMap manifest (exit 0 valid, 1 invalid)', unexpectedExit: EXIT.failed },
  render: { load: async () => (await import('./render.js')).runRender, summary: 'print the rules the agent would write, touching nothing', unexpectedExit: EXIT.failed },
  explain: { load: async () => (await import('./explain.js')).runExplain, summary: 'say whether traffic to an IP is masqueraded, and which rule decides', unexpectedExit: EXIT.failed },
  status: { load: async () => (await import('./status.js')).runStatus, summary: 'compare the live rules with the config (exit 0 in sync, 1 drifted)', unexpectedExit: EXIT.cannotCheck },
  cleanup: { load: async () => (await import('./cleanup.js')).runCleanup, summary: "remove the agent's chain, jump and nft table (idempotent)", unexpectedExit: EXIT.failed },
};

/** The command list for the agent's `--help`. */
export const COMMANDS_HELP = `Commands (the agent runs when none is given):\n${OPERATOR_COMMANDS.map((c) => `  ${c.padEnd(9)} ${COMMANDS[c].summary}`).join('\n')}\nRun 'ip-masq-agent COMMAND --help' for a command's flags and examples.\n`;

/** Whether argv[0] names an operator command (rather than the agent's flags). */
export function isOperatorCommand(word: string | undefined): word is OperatorCommand {
  return (OPERATOR_COMMANDS as readonly string[]).includes(word ?? '');
}

/** Runs the operator command argv[0] names; resolves to the process exit code. */
export async function runOperatorCommand(argv: readonly string[], io: CommandIo, deps: CommandDeps): Promise<number> {
  // `main` calls this only when isOperatorCommand(argv[0]).
  const [name, ...rest] = argv as [OperatorCommand, ...string[]];
  const command = COMMANDS[name];
  try {
    const run = await command.load();
    return await run(rest, io, deps);
  } catch (e) {
    // The commands handle what they expect; anything else still ends with a message, not a stack.
    const detail = e instanceof CommandError || e instanceof ConfigError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
    io.stderr(`ip-masq-agent ${name}: ${detail}\n`);
    return command.unexpectedExit;
  }
}
