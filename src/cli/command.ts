// The one shape of an operator command: its flags and help, the prologue every command shares
// (parse, --help, agent options, arguments, config), and how errors end it (exit codes).
import type { Runner } from '../exec/runner.js';
import type { Logger } from '../observe/log.js';
import { readRegularFileText } from '../config/read-text.js';
import { ConfigError, UsageError, formatIssue } from '../errors.js';
import { agentOptionsFromFlags, type AgentOptions } from './agent-options.js';
import { loadCommandConfig, type CommandConfig, type ReadText } from './command-config.js';
import { OUTPUT_FLAG, commandFlagSpecs, formatCommandHelp, outputFormat, parseCommandArgs, type CommandHelp, type OutputFormat } from './command-flags.js';
import type { FlagSpec, ParsedFlags } from './flags.js';

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
export type CommandFn<D extends CommandDeps = CommandDeps> = (argv: readonly string[], io: CommandIo, deps: D) => Promise<number>;

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

/** What a command's body is given once the shared prologue has run. */
export interface CommandContext<D extends CommandDeps = CommandDeps> {
  readonly flags: ParsedFlags;
  readonly opts: AgentOptions;
  readonly output: OutputFormat;
  readonly io: CommandIo;
  readonly deps: D;
  /** Reads a config file's text (the deps' reader, or the config loader's). */
  readonly readText: ReadText;
  /** Loads --config as the agent does; an invalid config ends the command with its `invalidConfig` message. */
  loadConfig(): Promise<CommandConfig>;
}

/** One operator command: what is its own, for `defineCommand` to wrap in the shared prologue. */
export interface CommandSpec<D extends CommandDeps = CommandDeps> {
  readonly name: string;
  readonly help: CommandHelp;
  /** The agent flags its help lists (the others are accepted silently). */
  readonly agentFlags: readonly string[];
  /** Its own flags, listed after the agent flags and before --output. */
  readonly ownFlags?: readonly FlagSpec[];
  /** Whether it takes positional arguments; without, any is a usage error. */
  readonly takesArguments?: boolean;
  /** What an invalid config means to it: the words after `ip-masq-agent NAME: `, and the exit code. */
  readonly invalidConfig?: { readonly message: string; readonly exit: number };
  run(ctx: CommandContext<D>): Promise<number>;
}

/** Ends a command with an exit code once its message has been written. */
class CommandStop extends Error {
  constructor(readonly exit: number) {
    super(`exit ${exit}`);
  }
}

/** Wraps a command's own part in the shared prologue: flags, --help, options, config, exit codes. */
export function defineCommand<D extends CommandDeps>(spec: CommandSpec<D>): CommandFn<D> {
  const { name } = spec;
  const specs = commandFlagSpecs(spec.agentFlags, [...(spec.ownFlags ?? []), OUTPUT_FLAG]);
  const help = formatCommandHelp(spec.help, specs);
  return async (argv, io, deps) => {
    try {
      const flags = parseCommandArgs(argv, specs);
      if (flags.help) {
        io.stdout(help);
        return EXIT.ok;
      }
      const opts = agentOptionsFromFlags(flags);
      const extra = flags.positional[0];
      if (!spec.takesArguments && extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
      const readText = deps.readText ?? readRegularFileText;
      const loadConfig = async (): Promise<CommandConfig> => {
        try {
          return await loadCommandConfig(opts.configPath, opts.config, readText);
        } catch (e) {
          if (!(e instanceof ConfigError) || spec.invalidConfig === undefined) throw e;
          io.stderr(`ip-masq-agent ${name}: ${spec.invalidConfig.message}:\n${e.issues.map((i) => `  ${formatIssue(i)}`).join('\n')}\n`);
          throw new CommandStop(spec.invalidConfig.exit);
        }
      };
      return await spec.run({ flags, opts, output: outputFormat(flags), io, deps, readText, loadConfig });
    } catch (e) {
      if (e instanceof CommandStop) return e.exit;
      if (!(e instanceof UsageError)) throw e;
      io.stderr(`ip-masq-agent ${name}: ${e.message}\nRun 'ip-masq-agent ${name} --help' for usage.\n`);
      return EXIT.usage;
    }
  };
}

/** Prints JSON data with a trailing newline. */
export function writeJson(io: CommandIo, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

/** A logger that drops everything: the commands report in their own words, not as log lines. */
export const silentLog: Logger = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined, trace: () => undefined };
