import { UsageError } from '../errors.js';
import { editDistance } from '../edit-distance.js';

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

/** The agent's flags: the reference's, klog's common ones, and ours. */
export const AGENT_FLAGS: readonly FlagSpec[] = [
  { name: 'config', kind: 'string', default: '/etc/config/ip-masq-agent', help: 'Config file, or a directory whose files named ip-masq-agent or ip-masq* are merged in name order.' },
  { name: 'masq-chain', kind: 'string', default: 'IP-MASQ-AGENT', help: 'Name of nat chain for iptables masquerade rules.' },
  { name: 'nomasq-all-reserved-ranges', kind: 'bool', default: 'false', help: 'Whether to disable masquerade for all IPv4 ranges reserved by RFCs (when nonMasqueradeCIDRs is absent).' },
  { name: 'enable-ipv6', kind: 'bool', default: 'false', help: 'Whether to enable IPv6.' },
  { name: 'random-fully', kind: 'bool', default: 'true', help: 'Whether to add --random-fully to the masquerade rule (where iptables supports it).' },
  { name: 'to-ports', kind: 'string', default: '', help: 'Source port ranges for masqueraded tcp, udp and sctp traffic, e.g. 1024-29999,32768-65535.' },
  { name: 'backend', kind: 'string', default: 'iptables', choices: ['iptables', 'nftables', 'auto'], help: 'Netfilter backend: iptables (drop-in), nftables (native table inet ip-masq-agent), or auto.' },
  { name: 'iptables-mode', kind: 'string', default: 'auto', choices: ['auto', 'legacy', 'nft'], help: 'Which iptables the host uses; auto detects it as kubernetes-sigs/iptables-wrappers does.' },
  { name: 'healthz-bind-address', kind: 'string', default: '127.0.0.1:10264', help: 'Address for /healthz and /readyz; empty or 0 disables.' },
  { name: 'metrics-bind-address', kind: 'string', default: '127.0.0.1:10265', help: 'Address for /metrics (Prometheus); empty or 0 disables.' },
  { name: 'command-timeout', kind: 'string', default: '30s', help: 'Deadline of each iptables/nft command (Go duration, 1s to 10m); past it the command and everything it started are killed and the sync fails and is retried.' },
  { name: 'v', kind: 'int', default: '0', help: 'Log verbosity: 0 state changes, 2 every sync, 4 commands run.' },
  ...['logtostderr', 'alsologtostderr', 'skip_headers', 'skip_log_headers', 'add_dir_header', 'one_output'].map(
    (name): FlagSpec => ({ name, kind: 'bool', default: name === 'logtostderr' ? 'true' : 'false', help: 'klog flag, accepted and ignored (logs go to stdout as JSON lines).', ignored: true }),
  ),
  ...['log_dir', 'log_file', 'log_backtrace_at', 'vmodule', 'stderrthreshold', 'log_file_max_size', 'log-flush-frequency'].map(
    (name): FlagSpec => ({ name, kind: 'string', default: '', help: 'klog flag, accepted and ignored.', ignored: true }),
  ),
];

/** Parsed flag values by name, with defaults filled in, plus the positional arguments. */
export interface ParsedFlags {
  readonly values: ReadonlyMap<string, string>;
  /** Flags given explicitly on the command line. */
  readonly set: ReadonlySet<string>;
  readonly positional: readonly string[];
  readonly help: boolean;
  readonly version: boolean;
}

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
 * (not for bools), `--bool=false`; parsing stops at the first non-flag argument or `--`.
 */
export function parseFlags(argv: readonly string[], specs: readonly FlagSpec[] = AGENT_FLAGS): ParsedFlags {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values = new Map(specs.map((s) => [s.name, s.default]));
  const set = new Set<string>();
  let help = false;
  let version = false;
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
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
      const hint = suggest(name, [...byName.keys()]);
      throw new UsageError(`flag provided but not defined: -${name}${hint ? ` (did you mean --${hint}?)` : ''}`);
    }
    if (spec.kind === 'bool') {
      if (value === undefined) value = 'true';
      else if (BOOL_TRUE.has(value)) value = 'true';
      else if (BOOL_FALSE.has(value)) value = 'false';
      else throw new UsageError(`invalid boolean value "${value}" for -${name}: use true or false`);
    } else if (value === undefined) {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`flag needs an argument: -${name}`);
      value = next;
      i++;
    }
    if (spec.kind === 'int' && !/^[+-]?\d+$/.test(value)) {
      throw new UsageError(`invalid value "${value}" for flag -${name}: parse error, want an integer`);
    }
    if (spec.choices && !spec.choices.includes(value)) {
      throw new UsageError(`invalid value "${value}" for flag -${name}: want one of ${spec.choices.join(', ')}`);
    }
    values.set(name, value);
    set.add(name);
  }
  return { values, set, positional: argv.slice(i), help, version };
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
    .join('\n')
    .concat('\n  klog flags (--v, --logtostderr, --alsologtostderr, --log_dir, --vmodule, ...) are accepted.');
}
