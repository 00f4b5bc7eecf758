import type { CidrEntry } from '../config/config.js';
import type { Family, IpAddress } from '../net/cidr.js';
import type { ExemptRange } from '../net/normalize.js';

/** Exempt ranges are defined in net (normalisation needs them); the policy's users find them here too. */
export type { ExemptRange, ExemptReason } from '../net/normalize.js';

/** What happens to traffic to a destination: it keeps the pod IP, is masqueraded, or leaves with a fixed address. */
export type Action =
  { readonly kind: 'keep' } | { readonly kind: 'masquerade' } | { readonly kind: 'snat'; readonly toSource: IpAddress; /** Canonical text of the address. */ readonly toSourceText: string };

/** The config list (or built-in) a decision entry comes from. */
export type DecisionList = 'link-local' | 'nonMasqueradeCIDRs' | 'masqueradeCIDRs' | 'snat';

/** What decided a counted connection: a config list, link-local, or the catch-all `default` rule. */
export interface CountedDecision {
  readonly action: Action['kind'];
  readonly list: DecisionList | 'default';
  /** The deciding row's CIDR (an nft set element's text); absent for a rule that stands for no one row. */
  readonly cidr?: string;
}

/** Connections one decision took, read from its rules' counters (a nat rule sees only a connection's first packet). */
export interface DecisionCount extends CountedDecision {
  readonly family: Family;
  readonly packets: number;
  readonly bytes: number;
}

/** One masquerade or SNAT destination entry (the exempt ones stay in `exempt`), traced to its origin. */
export interface ActionRange extends SourceRange {
  readonly action: Extract<Action, { kind: 'masquerade' | 'snat' }>;
  readonly list: 'masqueradeCIDRs' | 'snat';
}

/** One source range of masqueradeSourceCIDRs. */
export type SourceRange = CidrEntry;

/** An inclusive port range for `--to-ports`. */
export interface PortRange {
  readonly from: number;
  readonly to: number;
  /** As given on the command line (`1024-29999` or `8080`). */
  readonly text: string;
}

/**
 * Where our POSTROUTING jump sits and how an exemption ends (`--postrouting-position`):
 * `append` (the reference's) adds the jump at the end and an exemption RETURNs to POSTROUTING;
 * `first` keeps the jump first and makes an exemption end nat POSTROUTING for the packet.
 */
export type PostroutingPosition = 'append' | 'first';

/** What one address family's NAT rules must do. */
export interface FamilyPolicy {
  readonly family: Family;
  /** Exempt ranges in rule order: link-local first (unless masqLinkLocal*), then config order. */
  readonly exempt: readonly ExemptRange[];
  /** Whether MASQUERADE should use --random-fully (the backend drops it when unsupported). */
  readonly randomFully: boolean;
  /** Explicit source-port ranges for tcp, udp and sctp; empty for none. */
  readonly toPorts: readonly PortRange[];
  /** `--postrouting-position`; absent means `append`. */
  readonly postroutingPosition?: PostroutingPosition;
  /** kube-proxy's masquerade mark bit (`--iptables-masquerade-bit`), honoured with `first`; absent means 14. */
  readonly masqueradeBit?: number;
  /** Masquerade and SNAT entries (masqueradeCIDRs, snat); absent or empty = today's rules exactly. */
  readonly actions?: readonly ActionRange[];
  /** masqueradeSourceCIDRs of this family; absent = every source may be masqueraded, empty = none (the key lists only the other family). */
  readonly sources?: readonly SourceRange[];
}

/** The whole desired state: IPv4 always, IPv6 when enabled. */
export interface Policy {
  readonly families: readonly FamilyPolicy[];
}
