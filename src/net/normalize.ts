// CIDR normalisation for nftables interval sets: the kernel refuses overlapping intervals
// ("conflicting intervals specified"), and nft's auto-merge would list merged ranges that no
// longer compare equal to what we asked for. CIDR blocks either nest or are disjoint, so
// dropping duplicates and contained blocks leaves a set of pairwise disjoint blocks that covers
// exactly the same addresses.
import { BITS, formatCidr, type Cidr } from './cidr.js';

/** Why a destination range is exempt from masquerading. */
export type ExemptReason = 'link-local' | 'config';

/** One exempt (non-masquerade) destination range, traced back to where it came from. */
export interface ExemptRange {
  readonly cidr: Cidr;
  /** Canonical text, as written into rules (`10.0.0.0/8`, `fe80::/10`). */
  readonly text: string;
  readonly reason: ExemptReason;
  /** Config file path, or `defaults` / `built-in`. */
  readonly source: string;
  /** Key path inside the source, e.g. `nonMasqueradeCIDRs[2]`; empty for built-ins. */
  readonly path: string;
}

/** A range left out, and the kept range that already covers it. */
export interface DroppedRange {
  readonly range: ExemptRange;
  readonly reason: 'duplicate' | 'contained';
  readonly by: ExemptRange;
}

/** The outcome of normalisation: disjoint ranges in address order, plus what was dropped and why. */
export interface NormalizedRanges {
  /** Pairwise disjoint, sorted by (family, base, prefix); covers the same addresses as the input. */
  readonly kept: ExemptRange[];
  /** Each redundant input range, in sorted order, with the kept range that covers it. */
  readonly dropped: DroppedRange[];
}

/** The last address of a block. */
export function cidrLast(c: Cidr): bigint {
  return c.base + (1n << BigInt(BITS[c.family] - c.prefix)) - 1n;
}

/** Orders blocks by family (IPv4 first), then base address, then wider block first. */
export function compareCidrs(a: Cidr, b: Cidr): number {
  if (a.family !== b.family) return a.family === 'ipv4' ? -1 : 1;
  if (a.base !== b.base) return a.base < b.base ? -1 : 1;
  return a.prefix - b.prefix;
}

/**
 * The items in block order (compareCidrs; a stable sort keeps input order), and for each the index of the nearest
 * other item containing it (the longest such block; for the same block, only an earlier item). One
 * sort and one sweep: CIDR blocks nest or are disjoint, so in address order the blocks containing an
 * item are a stack. (Comparing every pair took minutes at 50,000 rows.)
 */
export function nestBlocks(items: readonly { readonly cidr: Cidr }[]): { order: number[]; parent: (number | undefined)[] } {
  const order = items.map((_, i) => i).sort((a, b) => compareCidrs(items[a]!.cidr, items[b]!.cidr));
  const parent = new Array<number | undefined>(items.length);
  const stack: { i: number; cidr: Cidr; last: bigint }[] = [];
  for (const i of order) {
    const { cidr } = items[i]!;
    let top = stack[stack.length - 1];
    while (top !== undefined && (top.cidr.family !== cidr.family || cidr.base > top.last)) {
      stack.pop();
      top = stack[stack.length - 1];
    }
    parent[i] = top?.i;
    // A later item of the same block: the first one stays the container of what follows.
    if (top === undefined || top.cidr.prefix !== cidr.prefix) stack.push({ i, cidr, last: cidrLast(cidr) });
  }
  return { order, parent };
}

/**
 * Drops duplicate and contained ranges (one nestBlocks sweep). Among equal blocks the first in input
 * order is kept, so a built-in link-local range wins over the same block written in the config.
 */
export function normalizeRanges(ranges: readonly ExemptRange[]): NormalizedRanges {
  const { order, parent } = nestBlocks(ranges);
  const kept: ExemptRange[] = [];
  const dropped: DroppedRange[] = [];
  // The outermost range containing each one: the kept range that covers it.
  const outer: number[] = [];
  for (const i of order) {
    const p = parent[i];
    outer[i] = p === undefined ? i : outer[p]!;
    const r = ranges[i]!;
    const by = ranges[outer[i]]!;
    if (p === undefined) kept.push(r);
    else dropped.push({ range: r, reason: by.cidr.base === r.cidr.base && by.cidr.prefix === r.cidr.prefix ? 'duplicate' : 'contained', by });
  }
  return { kept, dropped };
}

function origin(r: ExemptRange): string {
  const where = r.path ? `${r.source} ${r.path}` : r.source;
  return r.reason === 'link-local' ? `${where}, link-local` : where;
}

/** One log line explaining a dropped range, e.g. `10.1.0.0/16 (cfg nonMasqueradeCIDRs[3]) is contained in 10.0.0.0/8 (...)`. */
export function describeDropped(d: DroppedRange): string {
  const what = d.reason === 'duplicate' ? 'duplicates' : 'is contained in';
  return `${formatCidr(d.range.cidr)} (${origin(d.range)}) ${what} ${formatCidr(d.by.cidr)} (${origin(d.by)})`;
}
