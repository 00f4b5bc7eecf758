// Renders policies into one `nft -f -` transaction (pure). Each family owns its own set and chain,
// so applying one never rewrites the other's; they are deleted and created afresh (`flush table`
// would keep old set elements, and a rebuild heals a hook, priority or policy someone changed),
// and the kernel commits the whole batch or nothing, so no packet sees a half state.
import { formatCidr, type Family } from '../../net/cidr.js';
import { normalizeRanges } from '../../net/normalize.js';
import type { Action, FamilyPolicy, PortRange } from '../../policy/types.js';
import { add, canonicalLines, deleteByName, formatNftScript, type NftChain, type NftObject, type NftOp, type NftSet } from './model.js';
import { memoByObject } from '../backend.js';
import { TO_PORTS_PROTOCOLS } from '../iptables/constants.js';
import { FIRST_PRIORITY, NFT_NAMES, SRCNAT_PRIORITY } from './names.js';
import { exemptionIsFinal, masqueradeMarkHex } from '../../policy/build.js';
import { flattenPrefixes, intervalText, unionOfCidrs, type Interval } from '../../net/intervals.js';
import { DEFAULT_ACTION, decisionTable, sameAction, usesDecisionRules } from '../../policy/decide.js';

function portText(r: PortRange): string {
  return r.from === r.to ? String(r.from) : `${r.from}-${r.to}`;
}

/**
 * The `--to-ports` rules for one protocol: like the reference's `statistic --probability` chain,
 * range i is taken with probability size(i) / (size(i) + ... + size(last)), stated exactly by
 * `numgen random mod M < S`; the last range takes what is left.
 */
function toPortsRules(protocol: string, ranges: readonly PortRange[], flags: string, translate: string): string[] {
  let remaining = ranges.reduce((sum, r) => sum + r.to - r.from + 1, 0);
  return ranges.map((r, i) => {
    const size = r.to - r.from + 1;
    const pick = i < ranges.length - 1 ? ` numgen random mod ${remaining} < ${size}` : '';
    remaining -= size;
    return `meta l4proto ${protocol}${pick} counter ${translate}${portText(r)}${flags}`;
  });
}

/** The priority of a family's chain: srcnat (100), or just before it with `first`. */
export function nftChainPriority(policy: FamilyPolicy): number {
  return exemptionIsFinal(policy) ? FIRST_PRIORITY : SRCNAT_PRIORITY;
}

type SnatAction = Extract<Action, { kind: 'snat' }>;

/**
 * The decision table as disjoint intervals (flattenPrefixes), each with the action resolveDestination
 * gives it: `keep` for the set, `snat` for the SNAT map (masquerade is what the chain does to the
 * rest), `sources` for masqueradeSourceCIDRs. Undefined for a policy of exempt ranges only.
 */
function decisionIntervals(policy: FamilyPolicy) {
  if (!usesDecisionRules(policy)) return undefined;
  const rows = decisionTable(policy).map((row) => ({ cidr: row.cidr, value: row.action }));
  const parts = flattenPrefixes(policy.family, rows, DEFAULT_ACTION, sameAction);
  const snat = parts.filter((p): p is Interval<SnatAction> => p.value.kind === 'snat');
  const sourceCidrs = policy.sources?.map((s) => s.cidr);
  const sources = sourceCidrs && unionOfCidrs(policy.family, sourceCidrs);
  return { keep: parts.filter((p) => p.value.kind === 'keep'), snat, sources };
}

/** `{ a, b }` as nft prints an anonymous set or map, elements in address order. */
function anonymousSet(items: readonly string[]): string {
  return `{ ${items.join(', ')} }`;
}

/**
 * The translating rules: the --to-ports spread, then the catch-all, for the SNAT map first when
 * there is one (a destination not in the map fails the lookup, so the rule does not apply), then
 * for masquerade, which takes every destination left.
 */
function translateRules(policy: FamilyPolicy, snat: readonly Interval<SnatAction>[], flags: string): string[] {
  const p = NFT_NAMES[policy.family].payload;
  const map = `${p} daddr map ${anonymousSet(snat.map((iv) => `${intervalText(iv)} : ${iv.value.toSourceText}`))}`;
  // Each translation and what precedes its ports: `snat ip to MAP:1024-29999`, `masquerade to :1024-29999`.
  const translations = [...(snat.length > 0 ? [[`snat ${p} to ${map}`, ':']] : []), ['masquerade', ' to :']];
  return translations.flatMap(([t, ports]) => {
    const spread = TO_PORTS_PROTOCOLS.flatMap((protocol) => toPortsRules(protocol, policy.toPorts, flags, `${t}${ports}`));
    return [...spread, `counter ${t}${flags}`];
  });
}

/** The rule bodies of a family's chain, in order, exactly as `nft list` prints them; `decisions` as flattened once for the set. */
export function nftRuleTexts(policy: FamilyPolicy, decisions = decisionIntervals(policy)): string[] {
  const n = NFT_NAMES[policy.family];
  const flags = policy.randomFully ? ' fully-random' : '';
  const final = exemptionIsFinal(policy);
  const mark = `0x${masqueradeMarkHex(policy.masqueradeBit).slice(2).padStart(8, '0')}`;
  const rules = [
    // Both families' chains hang on the same inet hook; each handles only its own packets.
    `meta nfproto != ${n.nfproto} return`,
    // The reference's POSTROUTING jump skips LOCAL destinations (`-m addrtype ! --dst-type LOCAL`).
    'fib daddr type local return',
    // With `first`, traffic kube-proxy marked goes on to kube-proxy's masquerade.
    ...(final ? [`meta mark & ${mark} == ${mark} return`] : []),
    // `return` (an accept, in a base chain) lets a later nat chain masquerade an exempt destination;
    // with `first` the source is bound to itself, a NAT binding that keeps the pod's address and
    // after which no other nat chain runs for the connection.
    `${n.payload} daddr @${n.set} ${final ? `snat ${n.payload} to ${n.payload} saddr` : 'return'}`,
  ];
  const { snat = [], sources } = decisions ?? {};
  // The keep set applies to every source, as the iptables exempt rules do; only translation is scoped.
  if (sources?.length === 0) return rules;
  // nft lists a one-element anonymous set as the element itself, so it is written that way.
  const scope = sources && (sources.length === 1 ? intervalText(sources[0]!) : anonymousSet(sources.map(intervalText)));
  if (scope !== undefined) rules.push(`${n.payload} saddr != ${scope} return`);
  return [...rules, ...translateRules(policy, snat, flags)];
}

/** A family's interval set, counting per element. */
function familySet(family: Family, elements: readonly string[]): NftSet {
  return { kind: 'set', name: NFT_NAMES[family].set, type: NFT_NAMES[family].setType, flags: ['interval'], counter: true, elements };
}

/** A family's set (with its elements), chain and rules, as the policy wants them. */
export function nftFamilyObjects(policy: FamilyPolicy): NftObject[] {
  const n = NFT_NAMES[policy.family];
  // Flattened once: the set elements (the exempt ranges normalised, or the keep intervals) and the rules share it.
  const decisions = decisionIntervals(policy);
  const elements = decisions ? decisions.keep.map(intervalText) : normalizeRanges(policy.exempt).kept.map((r) => formatCidr(r.cidr));
  const base = { type: 'nat', hook: 'postrouting', priority: nftChainPriority(policy), policy: 'accept' };
  const objects: NftObject[] = [familySet(policy.family, elements), { kind: 'chain', name: n.chain, base }];
  for (const text of nftRuleTexts(policy, decisions)) objects.push({ kind: 'rule', chain: n.chain, text });
  return objects;
}

/**
 * The ops that replace a family's objects with what `policy` wants (without one: remove them).
 * Our chain is deleted first: its rules reference the set, which cannot be deleted while in use;
 * `between` (the deletes of objects we did not write) runs after it, as they may reference our
 * set. By name when `existing` (a listing) names them, which also replaces a set someone
 * re-created with other flags; else the blind form, an `add` that makes the `delete` valid when
 * the object is absent (nft 1.0.6 has no `destroy`).
 */
export function nftFamilyOps(family: Family, policy: FamilyPolicy | undefined, existing?: ReadonlySet<string>, between: readonly NftOp[] = []): NftOp[] {
  const remove = (o: NftSet | NftChain): NftOp[] => {
    if (existing) return existing.has(o.name) ? [deleteByName(o.kind, o.name)] : [];
    return [add(o), deleteByName(o.kind, o.name)];
  };
  const chain = remove({ kind: 'chain', name: NFT_NAMES[family].chain });
  return [...chain, ...between, ...remove(familySet(family, [])), ...(policy ? nftFamilyObjects(policy).map(add) : [])];
}

/**
 * One atomic `nft -f -` script: creates the table if absent, replaces the objects of every given
 * family completely (no stale elements or rules) and removes the objects of `remove` families (IPv6
 * turned off). Objects of families not named are left as they are. `existing`: see nftFamilyOps.
 */
export function renderNftScript(policies: readonly FamilyPolicy[], opts: { readonly remove?: readonly Family[]; readonly existing?: ReadonlySet<string> } = {}): string {
  const seen = new Set<Family>();
  const ops: NftOp[] = [];
  const removals = (opts.remove ?? []).map((family) => ({ family, policy: undefined }));
  for (const { family, policy } of [...policies.map((p) => ({ family: p.family, policy: p })), ...removals]) {
    const twice = policy ? `two ${family} policies` : `${family} is both applied and removed`;
    if (seen.has(family)) throw new Error(`${twice} in one nft script`);
    seen.add(family);
    ops.push(...nftFamilyOps(family, policy, opts.existing));
  }
  return formatNftScript(ops);
}

/** What read(family) returns after the policy was applied: canonical lines (see model.ts). */
export const expectedNftLines = memoByObject((policy: FamilyPolicy): readonly string[] => canonicalLines(nftFamilyObjects(policy)));
