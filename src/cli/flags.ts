import { UsageError } from '../errors.js';
import { editDistance } from '../edit-distance.js';
import { quoteExcerpt } from '../excerpt.js';

/** A flag the agent understands, in Go `flag` terms. */
export interface FlagSpec {
  readonly name: string;
  readonly kind: 'bool' | 'string' | 'int';
  readonly default: string;
  readonly help: string;
  /** Accepted so existing manifests keep working, but has no effect. */
  readonly ignored?: boolean;
  /** Allowed values, for enumerations. */
  readonly choices?: readonly string[];
}

// klog's flags besides `-v`, of both generations, with their kind as Go registers them: a bool
// never takes the next argument, a value flag always does, so a wrong kind would move the point
// where Go's parsing stops. Value flags are not checked: they have no effect here.

/** klog v1's (golang/glog, the reference up to v2.11). */
const KLOG_V1_FLAGS = ['logtostderr', 'alsologtostderr', 'stderrthreshold', 'vmodule', 'log_backtrace_at', 'log_dir', 'log_link', 'logbuflevel'];

/** klog v2's additions (v2.12), and component-base's log-flush-frequency, which manifests copied from other components carry. */
const KLOG_V2_FLAGS = ['add_dir_header', 'log_file', 'log_file_max_size', 'one_output', 'skip_headers', 'skip_log_headers', 'log-flush-frequency'];

/** The klog flags that are bools; the others take a value. */
const KLOG_BOOLS: ReadonlySet<string> = new Set(['logtostderr', 'alsologtostderr', 'add_dir_header', 'one_output', 'skip_headers', 'skip_log_headers']);

/** The agent's flags: the reference's, every klog flag of both generations, and ours. */
export const AGENT_FLAGS: readonly FlagSpec[] = [
  { name: 'config', kind: 'string', default: '/etc/config/ip-masq-agent', help: 'Config file, or a directory whose files named ip-masq-agent or ip-masq* are merged in name order.' },
  { name: 'masq-chain', kind: 'string', default: 'IP-MASQ-AGENT', help: 'Name of nat chain for iptables masquerade rules.' },
  { name: 'nomasq-all-reserved-ranges', kind: 'bool', default: 'false', help: 'Whether to disable masquerade for all IPv4 ranges reserved by RFCs (when nonMasqueradeCIDRs is absent).' },
  { name: 'enable-ipv6', kind: 'bool', default: 'false', help: 'Whether to enable IPv6.' },
  { name: 'random-fully', kind: 'bool', default: 'true', help: 'Whether to add --random-fully to the masquerade rule (where iptables supports it).' },
  { name: 'to-ports', kind: 'string', default: '', help: 'Source port ranges for masqueraded tcp, udp and sctp traffic, e.g. 1024-29999,32768-65535.' },
  {
    name: 'postrouting-position',
    kind: 'string',
    default: 'append',
    choices: ['append', 'first'],
    help: "Where the jump to our chain sits in nat POSTROUTING: append (the reference's; a later MASQUERADE rule may still translate an exempt destination), or first (kept first, and an exemption ends nat POSTROUTING for the packet, except traffic kube-proxy marked).",
  },
  {
    name: 'iptables-masquerade-bit',
    kind: 'int',
    default: '14',
    help: "kube-proxy's --iptables-masquerade-bit: with --postrouting-position=first, traffic with this mark bit still reaches kube-proxy's MASQUERADE rule.",
  },
  {
    name: 'backend',
    kind: 'string',
    default: 'iptables',
    choices: ['iptables', 'nftables', 'auto'],
    help: 'Netfilter backend: iptables (drop-in), nftables (native table inet ip-masq-agent), or auto.',
  },
  { name: 'iptables-mode', kind: 'string', default: 'auto', choices: ['auto', 'legacy', 'nft'], help: 'Which iptables the host uses; auto detects it as kubernetes-sigs/iptables-wrappers does.' },
  { name: 'healthz-bind-address', kind: 'string', default: '127.0.0.1:10264', help: 'Address for /healthz and /readyz; empty or 0 disables.' },
  { name: 'metrics-bind-address', kind: 'string', default: '127.0.0.1:10265', help: 'Address for /metrics (Prometheus); empty or 0 disables.' },
  {
    name: 'command-timeout',
    kind: 'string',
    default: '30s',
    help: 'Deadline of each iptables/nft command (Go duration, 1s to 10m); past it the command and everything it started are killed and the sync fails and is retried.',
  },
  {
    name: 'conntrack-delete-tcp',
    kind: 'bool',
    default: 'false',
    help: 'When a config change re-decides open flows, delete the conntrack entries of tcp and sctp connections too (breaking them), not only of udp and icmp flows.',
  },
  { name: 'v', kind: 'int', default: '0', help: 'Log verbosity: 0 state changes, 2 every sync, 4 commands run.' },
  ...[...KLOG_V1_FLAGS, ...KLOG_V2_FLAGS].map((name): FlagSpec => ({
    name,
    kind: KLOG_BOOLS.has(name) ? 'bool' : 'string',
    default: name === 'logtostderr' ? 'true' : KLOG_BOOLS.has(name) ? 'false' : '',
    help: 'klog flag, accepted and ignored (logs go to stdout as JSON lines).',
    ignored: true,
  })),
];

/** Parsed flag values by name, with defaults filled in, the flags `set` explicitly, and the positional arguments. */
export type ParsedFlags = ReturnType<typeof parseFlags>;

/** Longest excerpt of an argument quoted in messages, in bytes. */
const QUOTE_MAX_BYTES = 60;

/** An argument JSON-quoted, cut to a short excerpt (marked) so a huge argv is never echoed whole. */
const quoteArg = (arg: string): string => quoteExcerpt(arg, QUOTE_MAX_BYTES);

/** The closest known name, if close enough to be a likely typo. */
export function suggest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const dist = editDistance(name.toLowerCase(), k.toLowerCase());
    if (dist < bestD) [best, bestD] = [k, dist];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

const BOOL_TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const BOOL_FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

/**
 * Parses argv as Go's `flag` package does: `-name`, `--name`, `-name=value`, `--name value`
 * (not for bools), `--bool=false`; parsing stops at the first non-flag argument or `--`, unless
 * `interleaved`, which takes every non-flag argument as positional and reads on (up to `--`).
 */
export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[] = AGENT_FLAGS, interleaved = false) {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values = new Map(specs.map((s) => [s.name, s.default]));
  const set = new Set<string>();
  const positional: string[] = [];
  let help = false;
  let version = false;
  // Where parsing stopped before the end of argv: the index of the first argument not read (a lone
  // `--` or the first non-flag word), and the bool flag right before it written without `=`, for hints.
  let stop: { readonly index: number; readonly afterBoolFlag?: string } | undefined;
  let lastBareBool: string | undefined;
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (interleaved && arg !== '--' && (!arg.startsWith('-') || arg === '-')) {
      positional.push(arg);
      continue;
    }
    if (arg === '--' || !arg.startsWith('-') || arg === '-') {
      stop = { index: i, ...(lastBareBool === undefined ? {} : { afterBoolFlag: lastBareBool }) };
      if (arg === '--') i++;
      break;
    }
    lastBareBool = undefined;
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const name = eq < 0 ? body : body.slice(0, eq);
    let value: string | undefined = eq < 0 ? undefined : body.slice(eq + 1);
    if (name === 'help' || name === 'h') {
      help = true;
      continue;
    }
    if (name === 'version') {
      version = value === undefined || !BOOL_FALSE.has(value);
      continue;
    }
    const spec = byName.get(name);
    if (!spec) {
      const hint = name.length <= 100 ? suggest(name, [...byName.keys()]) : undefined;
      const shown = Buffer.byteLength(name, 'utf8') < QUOTE_MAX_BYTES ? `-${name}` : quoteArg(`-${name}`);
      throw new UsageError(`flag provided but not defined: ${shown}${hint ? ` (did you mean --${hint}?)` : ''}`);
    }
    if (spec.kind === 'bool') {
      if (value === undefined) {
        value = 'true';
        lastBareBool = arg;
      } else if (BOOL_TRUE.has(value)) value = 'true';
      else if (BOOL_FALSE.has(value)) value = 'false';
      else throw new UsageError(`invalid boolean value ${quoteArg(value)} for -${name}: use true or false`);
    } else if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`flag needs an argument: -${name}`);
      value = next;
      i++;
    }
    if (spec.kind === 'int' && !/^[+-]?\d+$/.test(value)) {
      throw new UsageError(`invalid value ${quoteArg(value)} for flag -${name}: parse error, want an integer`);
    }
    if (spec.choices && !spec.choices.includes(value)) {
      throw new UsageError(`invalid value ${quoteArg(value)} for flag -${name}: want one of ${spec.choices.join(', ')}`);
    }
    values.set(name, value);
    set.add(name);
  }
  return { values, set, positional: [...positional, ...argv.slice(i)], help, version, stop };
}

/** Words people write after a bool flag meaning its value, and the value they mean. */
function boolWord(word: string): 'true' | 'false' | undefined {
  if (BOOL_TRUE.has(word) || ['yes', 'on', 'y'].includes(word.toLowerCase())) return 'true';
  if (BOOL_FALSE.has(word) || ['no', 'off', 'n'].includes(word.toLowerCase())) return 'false';
  return undefined;
}

/** The warning for arguments Go's flag parsing ignores: a message, the ignored arguments quoted, hints. */
export type IgnoredArgsWarning = ReturnType<typeof describeIgnoredArgs>;

/** How many ignored arguments a warning lists, and how many ignored flags it names in a hint. */
const LIST_MAX = 10;
const FLAGS_NAMED_MAX = 5;

/**
 * Says which arguments the agent ignores because Go's `flag` (the reference's parser) stops at
 * the first non-flag argument, and what was probably meant (the ignored arguments quoted and cut
 * short, at most 10 then a count of the rest; one sentence per hint); undefined when nothing is ignored.
 * The agent runs with exactly the reference's values, so a DaemonSet with stray arguments keeps
 * working, but the operator learns that part of the command line has no effect.
 */
export function describeIgnoredArgs(argv: readonly string[], flags: ParsedFlags) {
  const stop = flags.stop;
  if (stop === undefined) return undefined;
  const rest = argv.slice(stop.index);
  const first = rest[0] ?? '';
  // A trailing `--` ends the flags and leaves nothing to ignore.
  if (first === '--' && rest.length === 1) return undefined;
  const ignored = rest.slice(0, LIST_MAX).map((a) => quoteArg(a));
  if (rest.length > LIST_MAX) ignored.push(`... and ${rest.length - LIST_MAX} more`);
  const hints: string[] = [];
  if (first === '--') {
    hints.push('a lone "--" ends the flags, so everything after it is ignored');
  } else if (stop.afterBoolFlag !== undefined) {
    const flag = stop.afterBoolFlag;
    const meant = boolWord(first);
    hints.push(
      meant === undefined
        ? `${flag} is a boolean flag: it takes no separate value, so parsing stopped at ${quoteArg(first)}`
        : `a boolean flag takes its value only with "=": did you mean ${flag}=${meant}? (${flag} is in force as true, as the reference reads it)`,
    );
  } else if (/(^|\/)ip-masq-agent$/.test(first)) {
    hints.push(`${quoteArg(first)} looks like the program name: the container's command and args may both name it`);
  } else {
    hints.push(`${quoteArg(first)} is not a flag (flags start with "-")`);
  }
  const skippedFlags = rest.slice(1).filter((a) => a.startsWith('-') && a !== '-' && a !== '--');
  if (skippedFlags.length > 0) {
    const named = skippedFlags.slice(0, FLAGS_NAMED_MAX).map((a) => quoteArg(a));
    const more = skippedFlags.length > FLAGS_NAMED_MAX ? ` and ${skippedFlags.length - FLAGS_NAMED_MAX} more` : '';
    const one = skippedFlags.length === 1;
    hints.push(`${named.join(', ')}${more} ${one ? 'was' : 'were'} ignored because parsing stopped before ${one ? 'it' : 'them'}: ${one ? 'it has' : 'they have'} no effect`);
  }
  const message =
    `ignoring ${rest.length} command-line argument${rest.length === 1 ? '' : 's'} from ${quoteArg(first)} on, as the reference agent does ` +
    `(Go's flag parsing stops at the first argument that is not a flag): ${hints.join('; ')}`;
  return { message, ignored, hints };
}

/** Renders flag help, one flag per block, as `--help` prints it. */
export function formatFlagHelp(specs: readonly FlagSpec[] = AGENT_FLAGS): string {
  return specs
    .filter((s) => !s.ignored)
    .map((s) => {
      const type = s.kind === 'bool' ? '' : s.choices ? ` ${s.choices.join('|')}` : ` ${s.kind}`;
      const def = s.default === '' ? '' : ` (default ${JSON.stringify(s.default)})`;
      return `  --${s.name}${type}\n        ${s.help}${def}`;
    })
    .join('\n');
}
