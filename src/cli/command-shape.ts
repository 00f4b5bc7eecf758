// The one shape of an operator command: its flags and help, the prologue every command shares
// (parse, --help, agent options, arguments, config), and how errors end it (exit codes).
import type { CidrEntry, ConfigOptions } from '../config/config.js';
import { loadConfig as loadConfigFiles, type LoadedConfig } from '../config/load.js';
import type { Position } from '../config/fragment.js';
import { formatWhere, type EntryPositions } from '../config/merge.js';
import { ConfigError, UsageError, formatIssue } from '../errors.js';
import { agentOptionsFromFlags, type AgentOptions } from './agent-options.js';
import { EXIT, type CommandDeps, type CommandFn, type CommandIo } from './command.js';
import { OUTPUT_FLAG, commandFlagSpecs, formatCommandHelp, outputFormat, parseCommandArgs, type CommandHelp, type OutputFormat } from './command-flags.js';
import type { FlagSpec, ParsedFlags } from './flags.js';

/** A config loaded for a command, and the path asked for. */
export interface CommandConfig extends LoadedConfig {
  readonly path: string;
}

/**
 * Loads the config at `path` for a command, as the agent does (a file, or a directory of ip-masq*
 * files), or from a Kubernetes manifest's ConfigMap(s). Throws ConfigError with every issue.
 */
export async function loadCommandConfig(path: string, opts: ConfigOptions): Promise<CommandConfig> {
  return { ...(await loadConfigFiles(path, opts, undefined, undefined, undefined, true)), path };
}

/** Where a CIDR entry (or anything with source and key path) was written, if known. */
export function positionOf(cfg: { readonly positions?: EntryPositions }, entry: { readonly source: string; readonly path: string }): Position {
  return cfg.positions?.of(entry) ?? {};
}

/** A one-line description of where a CIDR entry came from, for people. */
export function describeEntryOrigin(cfg: CommandConfig, entry: CidrEntry): string {
  if (entry.source === 'defaults') return `the default list (${entry.path}; no config file sets nonMasqueradeCIDRs)`;
  return `${formatWhere({ source: entry.source, ...positionOf(cfg, entry) })} ${entry.path}`;
}

/** What a command's body is given once the shared prologue has run. */
export interface CommandContext<D extends CommandDeps = CommandDeps> {
  readonly flags: ParsedFlags;
  readonly opts: AgentOptions;
  readonly output: OutputFormat;
  readonly io: CommandIo;
  readonly deps: D;
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

/** The `invalidConfig` of render and explain. */
export const KEEPS_LAST_GOOD_RULES = { message: 'the config is invalid; the agent would keep its last good rules', exit: EXIT.failed };

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
      const loadConfig = async (): Promise<CommandConfig> => {
        try {
          return await loadCommandConfig(opts.configPath, opts.config);
        } catch (e) {
          if (!(e instanceof ConfigError) || spec.invalidConfig === undefined) throw e;
          io.stderr(`ip-masq-agent ${name}: ${spec.invalidConfig.message}:\n${e.issues.map((i) => `  ${formatIssue(i)}`).join('\n')}\n`);
          throw new CommandStop(spec.invalidConfig.exit);
        }
      };
      return await spec.run({ flags, opts, output: outputFormat(flags), io, deps, loadConfig });
    } catch (e) {
      if (e instanceof CommandStop) return e.exit;
      if (!(e instanceof UsageError)) throw e;
      io.stderr(`ip-masq-agent ${name}: ${e.message}\nRun 'ip-masq-agent ${name} --help' for usage.\n`);
      return EXIT.usage;
    }
  };
}
