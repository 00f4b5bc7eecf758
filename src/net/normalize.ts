// CIDR normalisation for nftables interval sets: the kernel refuses overlapping intervals
// ("conflicting intervals specified"), and nft's auto-merge would list merged ranges that no
// longer compare equal to what we asked for. CIDR blocks either nest or are disjoint, so
// dropping duplicates and contained blocks leaves a set of pairwise disjoint blocks that covers
// exactly the same addresses.
import { cidrLast, formatCidr, type Cidr } from './cidr.js';

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

/** Orders blocks by family (IPv4 first), then base address, then wider block first. */
export function compareCidrs(a: Cidr, b: Cidr): number {
  if (a.family !== b.family) return a.family === 'ipv4' ? -1 : 1;
  if (a.base !== b.base) return a.base < b.base ? -1 : 1;
  return a.prefix - b.prefix;
}

/**
 * Drops duplicate and contained ranges in one sort and one sweep (O(n log n)): `kept` in (family,
 * base, prefix) order, `dropped` each redundant range with the kept one covering it. Among equal
 * blocks the first in input order is kept, so a built-in link-local range wins over the same block
 * written in the config.
 */
export function normalizeRanges(ranges: readonly ExemptRange[]) {
  // Array.prototype.sort is stable: equal blocks keep their input order.
  const sorted = [...ranges].sort((a, b) => compareCidrs(a.cidr, b.cidr));
  const kept: ExemptRange[] = [];
  const dropped: DroppedRange[] = [];
  let cover: ExemptRange | undefined;
  let coverLast = 0n;
  for (const r of sorted) {
    // Sorted by base, any block containing r sorts before it, and every block sorted between
    // the two lies inside the container too; so the last kept block is the only candidate.
    if (cover !== undefined && cover.cidr.family === r.cidr.family && r.cidr.base <= coverLast) {
      const same = cover.cidr.base === r.cidr.base && cover.cidr.prefix === r.cidr.prefix;
      dropped.push({ range: r, reason: same ? 'duplicate' : 'contained', by: cover });
      continue;
    }
    cover = r;
    coverLast = cidrLast(r.cidr);
    kept.push(r);
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
