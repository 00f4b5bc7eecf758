// Flag handling shared by the operator commands: the agent's own Go-style flags (so a
// DaemonSet's args can be pasted after a command), `--output`, flags and arguments in any order,
// and a help text that always ends with an example.
import { AGENT_FLAGS, formatFlagHelp, parseFlags, type FlagSpec, type ParsedFlags } from './flags.js';

/** `--output text|json`: human text by default, JSON for scripts. */
export const OUTPUT_FLAG: FlagSpec = {
  name: 'output',
  kind: 'string',
  default: 'text',
  choices: ['text', 'json'],
  help: 'Output format: text for people, json for scripts.',
};

/** How a command prints its data. */
export type OutputFormat = 'text' | 'json';

/**
 * The flags a command accepts: `shown` agent flags (listed in its help), its own `extra` flags,
 * and every other agent flag accepted silently, so the DaemonSet's args work unchanged.
 */
export function commandFlagSpecs(shown: readonly string[], extra: readonly FlagSpec[] = []): FlagSpec[] {
  const byName = new Map(AGENT_FLAGS.map((s) => [s.name, s]));
  const visible = shown.map((name) => {
    const spec = byName.get(name);
    if (!spec) throw new Error(`no agent flag named ${name}`);
    return spec;
  });
  const hidden = AGENT_FLAGS.filter((s) => !shown.includes(s.name)).map((s): FlagSpec => ({ ...s, ignored: true }));
  return [...visible, ...extra, ...hidden];
}

/**
 * Parses a command's argv with Go flag syntax, but lets flags and positional arguments mix
 * (`explain 10.1.2.3 --output json`). Everything after the first `--` is positional.
 */
export function parseCommandArgs(argv: readonly string[], specs: readonly FlagSpec[]): ParsedFlags {
  const dashdash = argv.indexOf('--');
  if (dashdash < 0) return parseFlags(argv, specs, true);
  const flags = parseFlags(argv.slice(0, dashdash), specs, true);
  return { ...flags, positional: [...flags.positional, ...argv.slice(dashdash + 1)] };
}

/** The `--output` value of parsed flags. */
export function outputFormat(flags: ParsedFlags): OutputFormat {
  return flags.values.get('output') === 'json' ? 'json' : 'text';
}

/** What a command's `--help` says. */
export interface CommandHelp {
  /** `ip-masq-agent explain [flags] IP...` */
  readonly usage: string;
  /** A few sentences: what it does and what its exit codes mean. */
  readonly description: string;
  /** One or more example command lines, with a comment each. */
  readonly examples: readonly string[];
}

/** Formats a command's help: usage, description, examples, then its flags. */
export function formatCommandHelp(help: CommandHelp, specs: readonly FlagSpec[]): string {
  return [
    `Usage: ${help.usage}`,
    '',
    help.description.trim(),
    '',
    'Examples:',
    ...help.examples.map((e) => `  ${e}`),
    '',
    'Flags:',
    formatFlagHelp(specs).replace(/\n {2}klog flags.*$/s, ''),
    "  The agent's other flags (klog, --healthz-bind-address, ...) are accepted and ignored, so the DaemonSet's args can be reused.",
    '',
  ].join('\n');
}
