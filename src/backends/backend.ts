import type { Family } from '../net/cidr.js';
import type { FamilyPolicy } from '../policy/types.js';

/**
 * The state a backend owns for one family, as canonical text lines in the tool's own
 * read-back format (for iptables: `iptables -t nat -S` lines). Empty when nothing is there.
 * Two states are equal when their lines are equal.
 */
export type OwnedState = readonly string[];

/** What one family's apply() writes, as an operator could read it or pipe it into the tool. */
export interface RenderedPayload {
  readonly family: Family;
  /** The command the payload is piped into, as an operator types it (`iptables-restore --noflush`, `nft -f -`). */
  readonly command: string;
  readonly payload: string;
  /** A command apply runs after the payload (iptables: the POSTROUTING jump), and when it runs it. */
  readonly followUp?: {
    readonly command: string;
    /** `if-missing`: only when the jump is not there; `keep-first`: it is moved back to rule 1 whenever another rule is above it. */
    readonly when: 'if-missing' | 'keep-first';
  };
}

/** What a backend is, for people: status prints these facts, explain speaks the dialect. */
export interface BackendFacts {
  /** As Backend.name. */
  readonly name: string;
  /** Whose words the rules are in (`MASQUERADE --random-fully` or `masquerade fully-random`). */
  readonly dialect: 'iptables' | 'nftables';
  /** iptables: the variant, `nft` or `legacy`. */
  readonly mode?: string;
  /** Why that variant was picked (what detection found), when it was detected. */
  readonly modeReason?: string;
  /** The tool's version, when it was asked. */
  readonly version?: string;
  /** false when the tool does not know `--random-fully`, so the rules leave it out. */
  readonly randomFullySupported?: boolean;
}

/** What a place the agent may have left state in holds now. */
export type Inspection = { readonly state: 'absent' } | { readonly state: 'present'; readonly what: string } | { readonly state: 'skipped'; readonly why: string };

/** One place a backend may have left state, e.g. `iptables-nft IPv4` or `nftables`. */
export interface CleanupTarget {
  readonly name: string;
  /** The backend that writes this state: `iptables-nft`, `iptables-legacy`, `nftables`, `fake`. */
  readonly backend: string;
  /** Looks without changing anything (and without making the kernel create a table). */
  inspect(): Promise<Inspection>;
  /** Removes what inspect() found. */
  remove(): Promise<void>;
}

/** A netfilter backend: renders a policy, reads back what it owns, applies atomically. */
export interface Backend {
  /** Human name, e.g. `iptables-nft`, `iptables-legacy`, `nftables`, `fake`. */
  readonly name: string;
  /** What read(family) returns after apply(policy) succeeded; pure. */
  expected(policy: FamilyPolicy): OwnedState;
  /** What apply(policy) writes, as text; pure, runs nothing. */
  render(policy: FamilyPolicy): RenderedPayload;
  /** Facts about this backend (variant, version, ...); pure. */
  describe(): BackendFacts;
  /** Reads back only what this backend owns for one family. */
  read(family: Family): Promise<OwnedState>;
  /**
   * Writes one family's desired state in one atomic step; on failure the old state stays.
   * `seen` is what read() returned just before in the same sync, when it did: a backend may use it
   * to spare a command (iptables: no jump seen, so the jump joins the chain's restore).
   */
  apply(policy: FamilyPolicy, seen?: OwnedState): Promise<void>;
  /**
   * A hint that a sync of this family begins: a backend may start the reads its read() or apply()
   * will need, so they run while the caller loads the config and renders. The next read(), apply()
   * or cleanup() of the family takes or drops what it started; each works the same without it.
   */
  prepareSync?(family: Family): void;
  /** Removes everything this backend owns for one family; a no-op when nothing is there. */
  cleanup(family: Family): Promise<void>;
  /**
   * Every place this backend may have left state, in any form an earlier run or release left
   * (for cleanup, and for removing the forms of a backend not in use).
   */
  leftovers(): readonly CleanupTarget[];
  /**
   * Rules of others that decide before ours and masquerade or SNAT, so they may shadow our
   * exemptions (for iptables: MASQUERADE/SNAT rules earlier in nat POSTROUTING than our jump).
   */
  findShadowing?(family: Family): Promise<readonly string[]>;
}
