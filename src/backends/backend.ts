import type { Family } from '../net/cidr.js';
import type { FamilyPolicy } from '../policy-types.js';

/**
 * The state a backend owns for one family, as canonical text lines in the tool's own
 * read-back format (for iptables: `iptables -t nat -S` lines). Empty when nothing is there.
 * Two states are equal when their lines are equal.
 */
export type OwnedState = readonly string[];

/** A netfilter backend: renders a policy, reads back what it owns, applies atomically. */
export interface Backend {
  /** Human name, e.g. `iptables-nft`, `iptables-legacy`, `nftables`, `fake`. */
  readonly name: string;
  /** What read(family) returns after apply(policy) succeeded; pure. */
  expected(policy: FamilyPolicy): OwnedState;
  /** Reads back only what this backend owns for one family. */
  read(family: Family): Promise<OwnedState>;
  /** Writes one family's desired state in one atomic step; on failure the old state stays. */
  apply(policy: FamilyPolicy): Promise<void>;
  /** Removes everything this backend owns for one family; a no-op when nothing is there. */
  cleanup(family: Family): Promise<void>;
  /**
   * Rules of others that decide before ours and masquerade or SNAT, so they may shadow our
   * exemptions (for iptables: MASQUERADE/SNAT rules earlier in nat POSTROUTING than our jump).
   */
  findShadowing?(family: Family): Promise<readonly string[]>;
}
