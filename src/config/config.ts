// The effective configuration of the agent and its defaults (the reference agent's, see
// compat-contract.md). Pure: no file access here.
import { parseCidr, type Cidr, type IpAddress } from '../net/cidr.js';

/** Where something was written: 1-based line and column. */
export interface Position {
  readonly line?: number;
  readonly column?: number;
}

/** One non-masquerade CIDR, traced back to where it was written. */
export interface CidrEntry {
  readonly cidr: Cidr;
  /** Canonical text (`10.0.0.0/8`, `2001:db8::/32`), as written into rules. */
  readonly text: string;
  /** File path the entry came from, or `defaults`. */
  readonly source: string;
  /** Key path inside the source, e.g. `nonMasqueradeCIDRs[2]`. */
  readonly path: string;
}

/** One destination CIDR of a `snat` entry, with the fixed address its traffic leaves with. */
export interface SnatCidrEntry extends CidrEntry {
  readonly toSource: IpAddress;
  /** Canonical text of toSource. */
  readonly toSourceText: string;
}

/** The configuration the agent acts on, every key resolved (defaults filled in). */
export interface MasqConfig {
  readonly nonMasqueradeCIDRs: readonly CidrEntry[];
  /** Destinations masqueraded although a shorter non-masquerade prefix covers them; absent = none. */
  readonly masqueradeCIDRs?: readonly CidrEntry[];
  /** Destinations SNATed to a fixed address, one entry per CIDR; absent = none. */
  readonly snat?: readonly SnatCidrEntry[];
  /** Sources that may be masqueraded or SNATed at all; absent or empty = every source. */
  readonly masqueradeSourceCIDRs?: readonly CidrEntry[];
  readonly cidrLimit: number;
  readonly masqLinkLocal: boolean;
  readonly masqLinkLocalIPv6: boolean;
  /** Resync period in milliseconds: sub-millisecond values round up, at least 1, at most 2^31-1 (Node's timer limit). */
  readonly resyncIntervalMs: number;
  /** The resync period as Go's Duration.String() prints it, e.g. `1m0s`. */
  readonly resyncInterval: string;
}

/** Agent flags that change how a config is read. */
export interface ConfigOptions {
  /** `--enable-ipv6`: without it an IPv6 CIDR in the config is an error, as in the reference. */
  readonly enableIPv6: boolean;
  /** `--nomasq-all-reserved-ranges`: the default CIDR list becomes all reserved IPv4 ranges. */
  readonly nomasqAllReservedRanges: boolean;
  /** The backend's hard cap on CIDRs (src/limits.ts), above any cidrLimit; default: the largest cap. */
  readonly cidrCap?: { readonly backend: string; readonly max: number };
}

/** Whether a directory entry is a config file: `ip-masq-agent` or any name starting with `ip-masq`. */
export function isConfigFileName(name: string): boolean {
  return name.startsWith('ip-masq');
}

/** Where the reference agent (and its DaemonSet manifest) reads the config. */
export const DEFAULT_CONFIG_PATH = '/etc/config/ip-masq-agent';

/** The RFC 1918 ranges: the default non-masquerade list. */
export const RFC1918_CIDRS: readonly string[] = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];

/** The default list with `--nomasq-all-reserved-ranges`, in the reference's order. */
export const RESERVED_CIDRS: readonly string[] = [
  ...RFC1918_CIDRS,
  '100.64.0.0/10',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.88.99.0/24',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '240.0.0.0/4',
];

/**
 * Shortest resync period in force; a shorter `resyncInterval` (`1ns`, `0s`) runs at this one, with a
 * warning. A resync re-reads the config and every owned rule (a few iptables runs, ~0.5 s of work
 * at 10,000 CIDRs), so below a second it only burns CPU and contends for the xtables lock with
 * kube-proxy; config changes do not need it, the watch sees them within 50 ms.
 */
export const MIN_RESYNC_INTERVAL_MS = 1000;

/** Node's setTimeout fires at once for longer delays, so resync periods are capped here. */
export const MAX_RESYNC_INTERVAL_MS = 2 ** 31 - 1;

/** The default non-masquerade list for these flags, as entries whose source is `defaults`. */
export function defaultCidrEntries(opts: ConfigOptions): CidrEntry[] {
  const texts = opts.nomasqAllReservedRanges ? RESERVED_CIDRS : RFC1918_CIDRS;
  // The texts are written canonical (as formatCidr prints them).
  return texts.map((text, i) => ({ cidr: parseCidr(text), text, source: 'defaults', path: `nonMasqueradeCIDRs[${i}]` }));
}
