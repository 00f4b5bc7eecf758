// The hard size limits of the agent, in one place: what it reads, what it programs, and how much
// it logs about one config. Each figure is measured (bench/backends.bench.ts --sections=limits,
// bench/sizes.bench.ts) and explained in docs/performance.md "Limits". Pure: no dependencies.

/**
 * The most bytes the agent reads from one config file, and from all files of a config directory
 * together. A ConfigMap holds at most 1 MiB; the rest leaves room for a hand-written hostPath file
 * with comments, while keeping parse + render of the largest accepted file well inside the
 * DaemonSet's 256Mi memory limit.
 */
export const MAX_CONFIG_BYTES = 1536 * 1024;

/**
 * The most `ip-masq*` entries a config directory may hold. Each file costs a few system calls and
 * a parse at every resync (about 1,000 files in tens of ms, measured); a config needs a handful.
 * Counted before any entry is opened, so a directory of many empty files is no way around the
 * byte cap's purpose.
 */
export const MAX_CONFIG_FILES = 1000;

/**
 * The most non-masquerade CIDRs (both families together) each backend is proven to handle: every
 * command well within the agent's 30 s timeout on a 2-vCPU machine (iptables-nft: 22 s to list
 * 100,000 rules), and the agent's peak memory inside the DaemonSet's 256Mi (nftables at 100,000:
 * 229 MiB; iptables-legacy at 100,000: 255 MiB, too close, so 50,000: 189 MiB).
 * `cidrLimit` cannot raise the limit past these.
 */
export const MAX_CIDRS = {
  nftables: 100_000,
  'iptables-nft': 50_000,
  'iptables-legacy': 50_000,
} as const;

/**
 * The most values (YAML nodes: scalars, lists, maps, empty list items) one config file may hold,
 * counted before it is parsed: room for the largest CIDR cap and the other keys. Parsing keeps
 * about 0.7 KB per node alive at once, so this, not the byte size, bounds the parser's memory.
 */
export const MAX_CONFIG_NODES = 101_000;

/**
 * Most keys one mapping of a config may have (it has 5). The yaml library checks each key against
 * every earlier one, so 100,000 keys would hold the agent for minutes before any other check.
 */
export const MAX_CONFIG_MAP_KEYS = 100;

/** Per-entry warnings or errors of a config shown whole (log, /healthz); the rest are counted. */
export const MAX_LOGGED_ISSUES = 20;

/** How many CIDRs the "config applied" log line lists; longer lists are summarised. */
export const MAX_LOGGED_CIDRS = 64;

/** The cap for a backend name; backends without one (the fake) get the largest. */
export function maxCidrsFor(backend: string): number {
  return (MAX_CIDRS as Record<string, number | undefined>)[backend] ?? Math.max(...Object.values(MAX_CIDRS));
}

/** The caps as one line for messages and help: `nftables 100,000, iptables-nft 50,000, ...`. */
export function describeCidrCaps(): string {
  return Object.entries(MAX_CIDRS)
    .map(([name, n]) => `${name} ${n.toLocaleString('en')}`)
    .join(', ');
}

/**
 * The cap that applies for the agent's --backend and --iptables-mode flags, before the backend is
 * detected: where the flags leave a choice (auto), the smallest cap among the backends it may pick.
 */
export function cidrCapForFlags(backend: string, iptablesMode: string): { backend: string; max: number } {
  const pick = (names: (keyof typeof MAX_CIDRS)[], why: string): { backend: string; max: number } => {
    const [smallest] = [...names].sort((a, b) => MAX_CIDRS[a] - MAX_CIDRS[b]);
    return { backend: names.length === 1 ? smallest! : `${smallest!} (the smallest cap ${why} may pick)`, max: MAX_CIDRS[smallest!] };
  };
  if (backend === 'nftables') return pick(['nftables'], '');
  if (backend === 'iptables' && (iptablesMode === 'nft' || iptablesMode === 'legacy')) return pick([`iptables-${iptablesMode}`], '');
  if (backend === 'iptables') return pick(['iptables-nft', 'iptables-legacy'], '--iptables-mode=auto');
  return pick(['nftables', 'iptables-nft', 'iptables-legacy'], `--backend=${backend}`);
}

/** Longest quoted error kept in a family's status (and so in /healthz and the log): bounded whatever a tool printed. */
export const MAX_ERROR_BYTES = 1024;
