// Renders one or both families' policies into a single `nft -f -` transaction (pure).
//
// Each family owns its own objects (set nonmasq4 + chain postrouting4, nonmasq6 + postrouting6),
// so applying one family never rewrites the other's. Within the transaction the family's chain
// and set are deleted and created afresh: `flush table` would keep old set elements, and a
// rebuild also heals a chain whose hook, priority or policy was changed by someone else. The
// `add` before each `delete` makes the delete valid when the object is absent (nft 1.0.6 has no
// `destroy`). The kernel commits the whole batch or nothing, so no packet sees a half state.
import { UsageError } from '../../errors.js';
import { formatCidr, type Family } from '../../net/cidr.js';
import { normalizeRanges } from '../../net/normalize.js';
import type { Action, FamilyPolicy, PortRange } from '../../policy/types.js';
import { chainLine, elementLine, ourSetLine, ruleLine } from './canonical.js';
import type { NftForeignObject } from './parse.js';
import { FIRST_PRIORITY, NFT_NAMES, NFT_TABLE_REF, SRCNAT_PRIORITY, TO_PORTS_PROTOCOLS, isAgentObject } from './names.js';
import { exemptionIsFinal, masqueradeMarkHex } from '../../policy/build.js';
import { flattenPrefixes, intervalText, unionOfCidrs, type Interval } from '../../net/intervals.js';
import { DEFAULT_ACTION, decisionTable, sameAction, usesDecisionRules } from '../../policy/decide.js';

/** Options for renderNftScript. */
export interface NftRenderOptions {
  /** Families whose objects are removed in the same transaction (e.g. IPv6 turned off). */
  readonly remove?: readonly Family[];
  /**
   * Names of the sets and chains known to exist in the table (from a listing). When given, old
   * objects are deleted by name only if listed, without the `add` first; this replaces an
   * object someone re-created with another type or flags, which the blind `add` refuses.
   */
  readonly existing?: ReadonlySet<string>;
  /**
   * Objects in our table the agent did not write (from a listing): deleted by handle in the same
   * transaction, after the applied families' chains (which may jump to them) and before their
   * sets (which a foreign chain may still reference, as a renamed chain of ours does).
   */
  readonly foreign?: readonly NftForeignObject[];
}

/** Object kinds nft 1.0.6 deletes by handle; `delete map` takes no handle, but `delete set` deletes a map. */
const DELETE_BY_HANDLE: Readonly<Record<string, string>> = {
  chain: 'chain',
  set: 'set',
  map: 'set',
  flowtable: 'flowtable',
  counter: 'counter',
  quota: 'quota',
  limit: 'limit',
  secmark: 'secmark',
  synproxy: 'synproxy',
};

/** Kinds nft deletes only by name (`delete ct helper inet t NAME`: "unexpected handle"). */
const DELETE_BY_NAME = new Set(['ct helper', 'ct timeout', 'ct expectation']);

/** A name nft reads bare, without quoting. */
const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** One foreign object's delete command; throws when nft has no way to name it, so the sync fails saying what. */
function deleteForeign(o: NftForeignObject): string {
  // A map holding our set's name goes by name: nft checks the script against its own view of the
  // table, where deleting by handle does not free the name, and it would refuse our `add set`.
  if (o.kind === 'map' && isAgentObject('set', o.name)) return `delete map ${NFT_TABLE_REF} ${o.name}`;
  const byHandle = DELETE_BY_HANDLE[o.kind];
  if (byHandle !== undefined && o.handle !== undefined) return `delete ${byHandle} ${NFT_TABLE_REF} handle ${o.handle}`;
  if (DELETE_BY_NAME.has(o.kind) && PLAIN_NAME.test(o.name)) return `delete ${o.kind} ${NFT_TABLE_REF} ${o.name}`;
  throw new Error(
    `table ${NFT_TABLE_REF} holds ${o.kind} ${JSON.stringify(o.name)}, which the agent did not write and cannot name to delete; remove it by hand (or delete the table: the agent re-creates its rules)`,
  );
}

/**
 * The deletes of the foreign objects: chains first, a chain before the chains it jumps to (the
 * kernel refuses to delete a chain still jumped to), then everything else (sets, maps, counters
 * that the deleted rules referenced).
 */
export function nftForeignDeletions(foreign: readonly NftForeignObject[]): string[] {
  const chains = foreign.filter((o) => o.kind === 'chain');
  const ordered: NftForeignObject[] = [];
  let left = chains;
  while (left.length > 0) {
    // Ready: no chain still left jumps to it. nft refuses jump loops, so one is always ready; the
    // fallback keeps a broken listing from looping here.
    const ready = left.filter((c) => !left.some((o) => o !== c && o.targets.includes(c.name)));
    const take = ready.length > 0 ? ready : left;
    ordered.push(...take);
    left = left.filter((c) => !take.includes(c));
  }
  return [...ordered, ...foreign.filter((o) => o.kind !== 'chain')].map(deleteForeign);
}

/** A transaction that only wakes a dormant table: the kernel refuses a base chain in the one that wakes it. */
export function renderNftWake(): string {
  return `add table ${NFT_TABLE_REF}\n`;
}

function portText(r: PortRange): string {
  return r.from === r.to ? String(r.from) : `${r.from}-${r.to}`;
}

/**
 * The `--to-ports` rules for one protocol. Like the reference's `statistic --probability` chain,
 * range i is taken with probability size(i) / (size(i) + ... + size(last)) when the earlier ranges
 * were not, so each new connection lands in range i with probability size(i) / total. `numgen
 * random mod M < S` states that fraction exactly; the last range takes what is left.
 */
function toPortsRules(protocol: string, ranges: readonly PortRange[], flags: string, translate = 'masquerade to :'): string[] {
  const sizes = ranges.map((r) => r.to - r.from + 1);
  let remaining = sizes.reduce((a, b) => a + b, 0);
  return ranges.map((r, i) => {
    const size = sizes[i] ?? 0;
    const pick = i < ranges.length - 1 ? ` numgen random mod ${remaining} < ${size}` : '';
    remaining -= size;
    return `meta l4proto ${protocol}${pick} counter ${translate}${portText(r)}${flags}`;
  });
}

/** The priority of a family's chain: srcnat (100), or just before it with `first`. */
export function nftChainPriority(policy: FamilyPolicy): number {
  return exemptionIsFinal(policy) ? FIRST_PRIORITY : SRCNAT_PRIORITY;
}

/**
 * How an exempt destination leaves our chain. `return` (an accept, in a base chain) lets a later
 * nat chain masquerade it; with `first` the source is bound to itself, a NAT binding that keeps
 * the pod's address and after which no other nat chain runs for the connection.
 */
export function nftExemptionVerdict(policy: FamilyPolicy): string {
  const n = NFT_NAMES[policy.family];
  return exemptionIsFinal(policy) ? `snat ${n.payload} to ${n.payload} saddr` : 'return';
}

/** Rules before the exemptions: with `first`, traffic kube-proxy marked goes on to kube-proxy's masquerade. */
export function nftPreludeRules(policy: FamilyPolicy): string[] {
  if (!exemptionIsFinal(policy)) return [];
  const mark = `0x${masqueradeMarkHex(policy.masqueradeBit).slice(2).padStart(8, '0')}`;
  return [`meta mark & ${mark} == ${mark} return`];
}

/** The flattened decisions of a family: what the keep set and the SNAT map hold, and the source scope. */
export interface NftDecisionIntervals {
  /** Destinations that keep the pod IP: the elements of the family's set. */
  readonly keep: readonly Interval<Action>[];
  /** Destinations SNATed to a fixed address: the elements of the anonymous SNAT map. */
  readonly snat: readonly Interval<SnatAction>[];
  /** masqueradeSourceCIDRs of the family as disjoint intervals; undefined when every source is in scope. */
  readonly sources: readonly Interval<true>[] | undefined;
}

type SnatAction = Extract<Action, { kind: 'snat' }>;

const flattened = new WeakMap<FamilyPolicy, NftDecisionIntervals>();

/**
 * The decision table flattened into disjoint intervals (see flattenPrefixes): every address gets
 * exactly the action resolveDestination gives it. Masquerade intervals are left out: masquerade is
 * what the chain does to a destination that neither the keep set nor the SNAT map holds.
 */
export function nftDecisionIntervals(policy: FamilyPolicy): NftDecisionIntervals {
  // A policy is readonly data: the set elements and the rules of one render share one flattening.
  const cached = flattened.get(policy);
  if (cached !== undefined) return cached;
  const rows = decisionTable(policy).map((row) => ({ cidr: row.cidr, value: row.action }));
  const parts = flattenPrefixes(policy.family, rows, DEFAULT_ACTION, sameAction);
  const snat = parts.filter((p): p is Interval<SnatAction> => p.value.kind === 'snat');
  const sources =
    policy.sources === undefined
      ? undefined
      : unionOfCidrs(
          policy.family,
          policy.sources.map((s) => s.cidr),
        );
  const result = { keep: parts.filter((p) => p.value.kind === 'keep'), snat, sources };
  flattened.set(policy, result);
  return result;
}

/** `{ a, b }` as nft prints an anonymous set or map, elements in address order. */
function anonymousSet(items: readonly string[]): string {
  return `{ ${items.join(', ')} }`;
}

/**
 * The translating rules of a longest-prefix policy: the --to-ports spread, then the catch-all, for
 * the SNAT map first (a destination not in the map fails the lookup, so the rule does not apply),
 * then for masquerade, which takes every destination left.
 */
function decisionTranslateRules(policy: FamilyPolicy, snat: readonly Interval<SnatAction>[], flags: string): string[] {
  const n = NFT_NAMES[policy.family];
  const rules: string[] = [];
  if (snat.length > 0) {
    const map = `${n.payload} daddr map ${anonymousSet(snat.map((iv) => `${intervalText(iv)} : ${iv.value.toSourceText}`))}`;
    if (policy.toPorts.length > 0) {
      for (const protocol of TO_PORTS_PROTOCOLS) rules.push(...toPortsRules(protocol, policy.toPorts, flags, `snat ${n.payload} to ${map}:`));
    }
    rules.push(`counter snat ${n.payload} to ${map}${flags}`);
  }
  if (policy.toPorts.length > 0) {
    for (const protocol of TO_PORTS_PROTOCOLS) rules.push(...toPortsRules(protocol, policy.toPorts, flags));
  }
  rules.push(`counter masquerade${flags}`);
  return rules;
}

/** The rule bodies of a family's chain, in order, exactly as `nft list` prints them. */
export function nftRuleTexts(policy: FamilyPolicy): string[] {
  const n = NFT_NAMES[policy.family];
  const flags = policy.randomFully ? ' fully-random' : '';
  const rules = [
    // Both families' chains hang on the same inet hook; each handles only its own packets.
    `meta nfproto != ${n.nfproto} return`,
    // The reference's POSTROUTING jump skips LOCAL destinations (`-m addrtype ! --dst-type LOCAL`).
    'fib daddr type local return',
    ...nftPreludeRules(policy),
    `${n.payload} daddr @${n.set} ${nftExemptionVerdict(policy)}`,
  ];
  if (usesDecisionRules(policy)) {
    const { snat, sources } = nftDecisionIntervals(policy);
    // The keep set applies to every source, as the iptables exempt rules do; only translation is scoped.
    if (sources !== undefined && sources.length === 0) return rules;
    // nft lists a one-element anonymous set as the element itself, so it is written that way.
    const scope = sources === undefined ? undefined : sources.length === 1 ? intervalText(sources[0]!) : anonymousSet(sources.map(intervalText));
    if (scope !== undefined) rules.push(`${n.payload} saddr != ${scope} return`);
    return [...rules, ...decisionTranslateRules(policy, snat, flags)];
  }
  if (policy.toPorts.length > 0) {
    for (const protocol of TO_PORTS_PROTOCOLS) rules.push(...toPortsRules(protocol, policy.toPorts, flags));
  }
  rules.push(`counter masquerade${flags}`);
  return rules;
}

/** The set elements of a family: the exempt ranges, normalised (disjoint, in address order); with decisions, the keep intervals. */
export function nftElementTexts(policy: FamilyPolicy): string[] {
  for (const r of [...policy.exempt, ...(policy.actions ?? []), ...(policy.sources ?? [])]) {
    if (r.cidr.family !== policy.family) {
      throw new Error(`${r.text} (${r.source} ${r.path}) is not ${policy.family} but sits in the ${policy.family} policy`);
    }
  }
  for (const a of policy.actions ?? []) {
    // nft refuses `snat ip to 2001:db8::9`, as iptables refuses it in an IPv4 table.
    if (a.action.kind === 'snat' && a.action.toSource.family !== policy.family) {
      throw new UsageError(`SNAT address ${a.action.toSourceText} (${a.source} ${a.path}) is not ${policy.family}, as the destination ${a.text} is`);
    }
  }
  if (usesDecisionRules(policy)) return nftDecisionIntervals(policy).keep.map(intervalText);
  return normalizeRanges(policy.exempt).kept.map((r) => formatCidr(r.cidr));
}

/** The deletes of a family's chain and of its set; the chain goes first: its rules reference the set, which cannot be deleted while in use. */
function removeFamily(family: Family, existing: ReadonlySet<string> | undefined): { chain: string[]; set: string[] } {
  const n = NFT_NAMES[family];
  if (existing) {
    return {
      chain: existing.has(n.chain) ? [`delete chain ${NFT_TABLE_REF} ${n.chain}`] : [],
      set: existing.has(n.set) ? [`delete set ${NFT_TABLE_REF} ${n.set}`] : [],
    };
  }
  return {
    chain: [`add chain ${NFT_TABLE_REF} ${n.chain}`, `delete chain ${NFT_TABLE_REF} ${n.chain}`],
    set: [`add set ${NFT_TABLE_REF} ${n.set} { type ${n.setType}; flags interval; counter; }`, `delete set ${NFT_TABLE_REF} ${n.set}`],
  };
}

function createFamily(policy: FamilyPolicy): string[] {
  const n = NFT_NAMES[policy.family];
  const elements = nftElementTexts(policy);
  const lines = [`add set ${NFT_TABLE_REF} ${n.set} { type ${n.setType}; flags interval; counter; }`];
  if (elements.length > 0) {
    // A loop, not push(...spread): spreading 125,000+ elements as arguments overflows the stack.
    lines.push(`add element ${NFT_TABLE_REF} ${n.set} {`);
    for (const e of elements) lines.push(`\t${e},`);
    lines.push('}');
  }
  const prio = nftChainPriority(policy);
  lines.push(`add chain ${NFT_TABLE_REF} ${n.chain} { type nat hook postrouting priority ${prio === SRCNAT_PRIORITY ? 'srcnat' : prio}; policy accept; }`);
  for (const rule of nftRuleTexts(policy)) lines.push(`add rule ${NFT_TABLE_REF} ${n.chain} ${rule}`);
  return lines;
}

/**
 * One atomic `nft -f -` script: creates the table if absent, replaces the objects of every given
 * family completely (no stale elements or rules) and removes the objects of `remove` families.
 * Objects of families not named are left as they are.
 */
export function renderNftScript(policies: readonly FamilyPolicy[], opts: NftRenderOptions = {}): string {
  const seen = new Set<Family>();
  let lines = ['# ip-masq-agent: one transaction; the kernel applies all of it or none', `add table ${NFT_TABLE_REF}`];
  const removals = new Map<Family, { chain: string[]; set: string[] }>();
  for (const p of policies) {
    if (seen.has(p.family)) throw new Error(`two ${p.family} policies in one nft script`);
    seen.add(p.family);
    removals.set(p.family, removeFamily(p.family, opts.existing));
  }
  const foreign = opts.foreign ?? [];
  if (foreign.length > 0) {
    // Our chains first (they may jump to a foreign chain), then the foreign objects (a foreign
    // chain may reference our set), then our sets and everything new.
    for (const r of removals.values()) lines = lines.concat(r.chain);
    lines = lines.concat(nftForeignDeletions(foreign));
  }
  for (const p of policies) {
    const r = removals.get(p.family)!;
    // concat, not push(...spread): a family's lines can be more than a call's argument limit.
    lines = lines.concat(foreign.length > 0 ? [] : r.chain, r.set, createFamily(p));
  }
  for (const family of opts.remove ?? []) {
    if (seen.has(family)) throw new Error(`${family} is both applied and removed in one nft script`);
    seen.add(family);
    const r = removeFamily(family, opts.existing);
    lines = lines.concat(r.chain, r.set);
  }
  return `${lines.join('\n')}\n`;
}

/** What read(family) returns after the policy was applied: canonical lines (see canonical.ts). */
export function expectedNftLines(policy: FamilyPolicy): string[] {
  const n = NFT_NAMES[policy.family];
  return [
    ourSetLine(n),
    ...nftElementTexts(policy).map((e) => elementLine(n.set, e)),
    chainLine(n.chain, { type: 'nat', hook: 'postrouting', prio: nftChainPriority(policy), policy: 'accept' }),
    ...nftRuleTexts(policy).map((r) => ruleLine(n.chain, r)),
  ];
}
