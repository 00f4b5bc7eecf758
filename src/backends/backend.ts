import type { Family } from '../net/cidr.js';
import type { DecisionCount, FamilyPolicy } from '../policy/types.js';
import type { ShadowingRule } from './shadow-owner.js';

/** The state a backend owns for one family, as canonical lines of the tool's read-back (iptables: `-S` lines); equal when the lines are. */
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
  /** Whose words the rules are in (`MASQUERADE --random-fully` or `masquerade fully-random`). */
  readonly dialect: 'iptables' | 'nftables';
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

/** What read() saw of one family: what the backend owns there, as it compares with expected(). */
export interface Observed {
  readonly family: Family;
  /** Our rules as canonical lines, or undefined when read() was told not to list them (`owned: false`). */
  readonly owned: OwnedState | undefined;
}

/** What apply() does for one family: decided by plan() from what read() saw and the policy wanted; data only. */
export interface Plan {
  readonly family: Family;
  /** The kernel holds what is wanted: apply() runs nothing. */
  readonly upToDate: boolean;
  /** Rules of others that translate before ours once the plan is applied, so they may shadow our exemptions. */
  readonly shadowing: readonly ShadowingRule[];
}

/** A netfilter backend: a sync is read -> plan -> apply, and nothing is kept between calls. */
export interface Backend<O extends Observed = Observed, P extends Plan = Plan> {
  /** Human name, e.g. `iptables-nft`, `iptables-legacy`, `nftables`, `fake`. */
  readonly name: string;
  /** What read(family).owned shows once a plan for this policy is applied; pure. */
  expected(policy: FamilyPolicy): OwnedState;
  /** What apply() writes for this policy on a node with none of our rules, as text; pure, runs nothing. */
  render(policy: FamilyPolicy): RenderedPayload;
  /** Facts about this backend (variant, version, ...); pure. */
  describe(): BackendFacts;
  /**
   * Reads what the kernel holds of ours for one family, and what decides beside it. `owned: false`
   * skips listing our own rules, which a config change rewrites whole anyway (at 50,000 CIDRs that
   * listing costs about as much as the write); what decides around them is still read.
   */
  read(family: Family, options?: { readonly owned?: boolean }): Promise<O>;
  /** What it takes to turn `observed` into `policy`; pure. */
  plan(observed: O, policy: FamilyPolicy): P;
  /** Runs a plan in one atomic step where the tool allows; on failure the old rules stay. */
  apply(plan: P): Promise<void>;
  /** Removes everything this backend owns for one family; a no-op when nothing is there. */
  cleanup(family: Family): Promise<void>;
  /** Every place this backend may have left state, in any form an earlier run or release left. */
  leftovers(): readonly CleanupTarget[];
  /** Connections per decision of `policies`' families, from the rules' own counters; absent where the backend keeps none. */
  counters?(policies: readonly FamilyPolicy[]): Promise<DecisionCount[]>;
}

/** Whether two states hold the same lines in the same order. */
export function sameState(a: OwnedState | undefined, b: OwnedState): boolean {
  return a !== undefined && a.length === b.length && a.every((l, i) => l === b[i]);
}

/**
 * `fn` memoized per object. A policy is built once per config and every resync plans against it,
 * so what a quiet resync compares is rendered once per config (about 7 ms of CPU at 10,000 CIDRs
 * on iptables; bench/resync.bench.ts). The keys are never changed, and the cache goes with them.
 */
export function memoByObject<K extends object, T>(fn: (key: K) => T): (key: K) => T {
  const cache = new WeakMap<K, T>();
  return (key) => {
    if (!cache.has(key)) cache.set(key, fn(key));
    return cache.get(key)!;
  };
}
