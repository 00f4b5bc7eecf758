// Which flows a policy change re-decides. NAT is decided on a connection's first packet, so after
// a change a long-lived flow keeps the old translation until its conntrack entry goes; this finds
// the (source, destination) space whose translation of a new connection differs, for the deletion.
// What counts as a change: keep vs masquerade vs SNAT to another address, the source scope, and
// --to-ports (an old flow's port outside the new ranges is what the operator wanted gone).
// --random-fully is not: it changes how a new port is picked, not whether an old one is right;
// neither is --postrouting-position or the masquerade bit, which leave every translation as it was.
import { cidrLast, type Cidr, type Family } from '../net/cidr.js';
import { coveringCidr, flattenPrefixes, intervalCidrs, overlayPartitions, unionOfCidrs, type Interval } from '../net/intervals.js';
import { decisionTable, DEFAULT_ACTION, KEEP, sameAction } from './decide.js';
import type { Action, FamilyPolicy } from './types.js';

/** Flows whose translation changed: to these destinations, from these sources, all treated alike by the old policy. */
export interface ChangedFlows {
  /** Destination blocks, disjoint and merged, in address order. */
  readonly destinations: readonly Cidr[];
  /** Source blocks the change is limited to; absent = every source. */
  readonly sources?: readonly Cidr[];
  /** Whether the old policy translated these flows (masquerade or SNAT) rather than keeping the pod IP. */
  readonly oldTranslated: boolean;
}

/** What changed for one family, bounded for the deletion. */
export type ChangedDecisions = ReturnType<typeof changedDecisions>;

/**
 * At most this many (source, destination) block pairs by default. Each is one conntrack command per
 * protocol, and each command walks the whole table: about 30 ms CPU at 10,000 entries, matched or
 * not (bench/conntrack.bench.ts), so 8 pairs cost about half a second of CPU at a change.
 */
export const MAX_CHANGED_BLOCKS = 8;

/** The destination partition of a policy: each address with the action of its longest prefix. */
function destinations(fp: FamilyPolicy): Interval<Action>[] {
  const rows = decisionTable(fp).map((r) => ({ cidr: r.cidr, value: r.action }));
  return flattenPrefixes(fp.family, rows, DEFAULT_ACTION, sameAction);
}

/** The source partition: true where a source may be translated at all. */
function scope(fp: FamilyPolicy): Interval<boolean>[] {
  const rows = (fp.sources ?? []).map((s) => ({ cidr: s.cidr, value: true }));
  return flattenPrefixes(fp.family, rows, fp.sources === undefined, Object.is);
}

/** The fewest blocks covering exactly the given blocks (overlapping and adjacent ones merged). */
function blocks(family: Family, cidrs: readonly Cidr[]): Cidr[] {
  return unionOfCidrs(family, cidrs).flatMap((u) => intervalCidrs(family, u.first, u.last));
}

/** The blocks of intervals. */
const cidrsOf = (family: Family, parts: readonly Interval<unknown>[]): Cidr[] => parts.flatMap((p) => intervalCidrs(family, p.first, p.last));

/** How many conntrack filters the changes make: one per (source, destination) block pair. */
export function countBlockPairs(changes: readonly ChangedFlows[]): number {
  return changes.reduce((n, c) => n + (c.sources?.length ?? 1) * c.destinations.length, 0);
}

/**
 * The flows whose translation of a new connection differs between `old` and `next` (one family),
 * exact when it takes at most `limit` block pairs. Beyond it the answer is widened to a superset:
 * first the source limits are dropped, then each group's destinations become the one block
 * covering them all; at most two groups remain (old translated, old kept), so at most two pairs,
 * and `widened` says so.
 */
export function changedDecisions(old: FamilyPolicy, next: FamilyPolicy, limit = MAX_CHANGED_BLOCKS) {
  const family = old.family;
  const portsMoved = old.toPorts.map((r) => r.text).join(',') !== next.toPorts.map((r) => r.text).join(',');
  const same = (a: Action, b: Action): boolean => sameAction(a, b) && (a.kind === 'keep' || !portsMoved);
  const dst = overlayPartitions(destinations(old), destinations(next));
  const src = overlayPartitions(scope(old), scope(next));
  const changes: ChangedFlows[] = [];
  // A source in neither scope is kept by both policies: nothing of it changes.
  for (const [inOld, inNew] of [
    [true, true],
    [true, false],
    [false, true],
  ] as const) {
    const sourceParts = src.filter((p) => p.value[0] === inOld && p.value[1] === inNew);
    if (sourceParts.length === 0) continue;
    const sources = blocks(family, cidrsOf(family, sourceParts));
    const everySource = sources.length === 1 && sources[0]!.prefix === 0;
    for (const oldTranslated of [true, false]) {
      const moved = dst.filter(({ value: [a, b] }) => {
        const was = inOld ? a : KEEP;
        return (was.kind !== 'keep') === oldTranslated && !same(was, inNew ? b : KEEP);
      });
      if (moved.length === 0) continue;
      changes.push({ destinations: blocks(family, cidrsOf(family, moved)), ...(everySource ? {} : { sources }), oldTranslated });
    }
  }
  if (countBlockPairs(changes) <= limit) return { family, changes, widened: false };
  return { family, changes: widen(family, changes, limit), widened: true };
}

/** A superset of `changes` in fewer block pairs (see changedDecisions). */
function widen(family: Family, changes: readonly ChangedFlows[], limit: number): ChangedFlows[] {
  const grouped = [true, false].flatMap((oldTranslated) => {
    const dsts = changes.filter((c) => c.oldTranslated === oldTranslated).flatMap((c) => c.destinations);
    if (dsts.length === 0) return [];
    return [{ oldTranslated, destinations: blocks(family, dsts) }];
  });
  if (countBlockPairs(grouped) <= limit) return grouped;
  return grouped.map((g) => {
    const last = cidrLast(g.destinations[g.destinations.length - 1]!);
    return { oldTranslated: g.oldTranslated, destinations: [coveringCidr(family, g.destinations[0]!.base, last)] };
  });
}
