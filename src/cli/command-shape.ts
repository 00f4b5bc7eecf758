// The one shape of an operator command: its flags and help, the prologue every command shares
// (parse, --help, agent options, arguments, config), and how errors end it (exit codes). A command
// takes the agent's own Go-style flags (so a DaemonSet's args can be pasted after it), `--output`,
// and flags and arguments in any order; its help always ends with an example.
import type { SelectOptions } from '../backends/select.js';
import type { CidrEntry, ConfigOptions } from '../config/config.js';
import { loadConfig as loadConfigFiles } from '../config/load.js';
import { formatWhere } from '../config/merge.js';
import { ConfigError, UsageError, formatIssue } from '../errors.js';
import { agentOptionsFromFlags, type AgentOptions } from './agent-options.js';
import { EXIT, silentLog, type CommandDeps, type CommandFn, type CommandIo } from './command.js';
import { AGENT_FLAGS, formatFlagHelp, parseFlags, type FlagSpec, type ParsedFlags } from './flags.js';

/** `--output text|json`: human text by default, JSON for scripts. */
export const OUTPUT_FLAG: FlagSpec = {
  name: 'output',
  kind: 'string',
  default: 'text',
  choices: ['text', 'json'],
  help: 'Output format: text for people, json for scripts.',
};

/**
 * The flags a command accepts: `shown` agent flags (listed in its help), its own `extra` flags,
 * and every other agent flag accepted silently, so the DaemonSet's args work unchanged.
 */
export function commandFlagSpecs(shown: readonly string[], extra: readonly FlagSpec[] = []): FlagSpec[] {
  const visible = shown.map((name) => AGENT_FLAGS.find((s) => s.name === name)!);
  const hidden = AGENT_FLAGS.filter((s) => !shown.includes(s.name)).map((s): FlagSpec => ({ ...s, ignored: true }));
  return [...visible, ...extra, ...hidden];
}

/** A config loaded for a command, and the path asked for. */
export type CommandConfig = Awaited<ReturnType<typeof loadCommandConfig>>;

/**
 * Loads the config at `path` for a command, as the agent does (a file, or a directory of ip-masq*
 * files), or from a Kubernetes manifest's ConfigMap(s). Throws ConfigError with every issue.
 */
export async function loadCommandConfig(path: string, opts: ConfigOptions) {
  return { ...(await loadConfigFiles(path, opts, undefined, undefined, undefined, true)), path };
}

/** A one-line description of where a CIDR entry came from, for people. */
export function describeEntryOrigin(cfg: CommandConfig, entry: CidrEntry): string {
  if (entry.source === 'defaults') return `the default list (${entry.path}; no config file sets nonMasqueradeCIDRs)`;
  return `${formatWhere({ source: entry.source, ...cfg.positions?.of(entry) })} ${entry.path}`;
}

/** What a command's body is given once the shared prologue has run. */
export interface CommandContext {
  readonly flags: ParsedFlags;
  readonly opts: AgentOptions;
  readonly output: 'text' | 'json';
  readonly io: CommandIo;
  readonly deps: CommandDeps;
  /** How to pick the backend as the agent would (its flags, the deps' runner), logging nothing. */
  readonly select: SelectOptions;
  /** Loads --config as the agent does; an invalid config ends the command with its `invalidConfig` message. */
  loadConfig(): Promise<CommandConfig>;
}

/** One operator command: what is its own, for `defineCommand` to wrap in the shared prologue. */
export interface CommandSpec {
  readonly name: string;
  /** What its `--help` says. */
  readonly help: {
    /** `ip-masq-agent explain [flags] IP...` */
    readonly usage: string;
    /** A few sentences: what it does and what its exit codes mean. */
    readonly description: string;
    /** One or more example command lines, with a comment each. */
    readonly examples: readonly string[];
  };
  /** The agent flags its help lists (the others are accepted silently). */
  readonly agentFlags: readonly string[];
  /** Its own flags, listed after the agent flags and before --output. */
  readonly ownFlags?: readonly FlagSpec[];
  /** Whether it takes positional arguments; without, any is a usage error. */
  readonly takesArguments?: boolean;
  /** What an invalid config means to it: the words after `ip-masq-agent NAME: `, and the exit code. */
  readonly invalidConfig?: { readonly message: string; readonly exit: number };
  run(ctx: CommandContext): Promise<number>;
}

/** The `invalidConfig` of render and explain. */
export const KEEPS_LAST_GOOD_RULES = { message: 'the config is invalid; the agent would keep its last good rules', exit: EXIT.failed };

/** Wraps a command's own part in the shared prologue: flags, --help, options, config, exit codes. */
export function defineCommand(spec: CommandSpec): CommandFn {
  const { name } = spec;
  const specs = commandFlagSpecs(spec.agentFlags, [...(spec.ownFlags ?? []), OUTPUT_FLAG]);
  const { usage, description, examples } = spec.help;
  const help = [
    `Usage: ${usage}`,
    '',
    description.trim(),
    '',
    'Examples:',
    ...examples.map((e) => `  ${e}`),
    '',
    'Flags:',
    formatFlagHelp(specs),
    "  The agent's other flags (klog, --healthz-bind-address, ...) are accepted and ignored, so the DaemonSet's args can be reused.",
    '',
  ].join('\n');
  return async (argv, io, deps) => {
    try {
      // Flags and arguments mix (`explain 10.1.2.3 --output json`); after `--` all is positional.
      const flags = parseFlags(argv, specs, true);
      if (flags.help) {
        io.stdout(help);
        return EXIT.ok;
      }
      const opts = agentOptionsFromFlags(flags);
      const extra = flags.positional[0];
      if (!spec.takesArguments && extra !== undefined) throw new UsageError(`unexpected argument "${extra}"`);
      const loadConfig = (): Promise<CommandConfig> => loadCommandConfig(opts.configPath, opts.config);
      const output = flags.values.get('output') === 'json' ? 'json' : 'text';
      const select: SelectOptions = { backend: opts.backend, iptablesMode: opts.iptablesMode, chain: opts.chain, runner: deps.runner, log: silentLog };
      return await spec.run({ flags, opts, output, io, deps, select, loadConfig });
    } catch (e) {
      // Only loadConfig throws a ConfigError (the config module is the one that makes them).
      if (e instanceof ConfigError && spec.invalidConfig !== undefined) {
        io.stderr(`ip-masq-agent ${name}: ${spec.invalidConfig.message}:\n${e.issues.map((i) => `  ${formatIssue(i)}`).join('\n')}\n`);
        return spec.invalidConfig.exit;
      }
      if (!(e instanceof UsageError)) throw e;
      io.stderr(`ip-masq-agent ${name}: ${e.message}\nRun 'ip-masq-agent ${name} --help' for usage.\n`);
      return EXIT.usage;
    }
  };
}
