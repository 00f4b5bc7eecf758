// Flattening of nested prefixes into disjoint address intervals (bigint arithmetic). nftables
// interval sets and maps refuse overlapping elements, so a longest-prefix table has to become a
// partition of the address space before it can be written: each address lies in exactly one
// interval, whose value is that of the longest prefix containing it.
import { BITS, cidrLast, formatCidr, formatIp, type Cidr, type Family } from './cidr.js';
import { compareCidrs } from './normalize.js';

/** An inclusive address range [first, last] of one family, carrying a value. */
export interface Interval<T> {
  readonly family: Family;
  readonly first: bigint;
  readonly last: bigint;
  readonly value: T;
}

/** The highest address of a family. */
export function maxAddress(family: Family): bigint {
  return (1n << BigInt(BITS[family])) - 1n;
}

/**
 * The partition of the whole address space of `family` that the entries (prefixes with values)
 * decide: an address gets the value of the longest prefix containing it (for the same block twice,
 * the first entry in input order), or `fallback` when none does. Adjacent intervals with equal
 * values are merged, so no two neighbours are `same`. Entries of the other family are an error.
 * O(n log n) in the entries.
 */
export function flattenPrefixes<T>(family: Family, entries: readonly { readonly cidr: Cidr; readonly value: T }[], fallback: T, same: (a: T, b: T) => boolean): Interval<T>[] {
  for (const e of entries) {
    if (e.cidr.family !== family) throw new Error(`${formatCidr(e.cidr)} is not ${family}`);
  }
  // Sorted by base, then wider first: a block's container always comes before it. Stable, so the
  // first of two equal blocks comes first and is the one kept. IPv4 bases compare as numbers
  // (exact below 2^53), several times faster than bigints at 50,000 entries.
  const sorted =
    family === 'ipv4'
      ? entries
          .map((e) => ({ e, base: Number(e.cidr.base) }))
          .sort((a, b) => a.base - b.base || a.e.cidr.prefix - b.e.cidr.prefix)
          .map(({ e }) => e)
      : [...entries].sort((a, b) => compareCidrs(a.cidr, b.cidr));
  // Built mutable (extending the last interval in place is the hot path), returned as readonly.
  const out: { family: Family; first: bigint; last: bigint; value: T }[] = [];
  const emit = (first: bigint, last: bigint, value: T): void => {
    if (first > last) return;
    const prev = out[out.length - 1];
    if (prev !== undefined && (prev.value === value || same(prev.value, value)) && prev.last + 1n === first) {
      prev.last = last;
      return;
    }
    out.push({ family, first, last, value });
  };
  // The open blocks, outermost first; `pos` is the first address not yet emitted.
  const stack: { last: bigint; value: T; cidr: Cidr }[] = [];
  let pos = 0n;
  // Closes every open block that ends before `base` (blocks nest or are disjoint).
  const closeBefore = (base: bigint): void => {
    while (stack.length > 0 && stack[stack.length - 1]!.last < base) {
      const closed = stack.pop()!;
      emit(pos, closed.last, closed.value);
      pos = closed.last + 1n;
    }
  };
  for (const e of sorted) {
    const top = stack[stack.length - 1];
    if (top !== undefined && top.cidr.base === e.cidr.base && top.cidr.prefix === e.cidr.prefix) continue;
    closeBefore(e.cidr.base);
    emit(pos, e.cidr.base - 1n, stack[stack.length - 1]?.value ?? fallback);
    pos = e.cidr.base;
    stack.push({ last: cidrLast(e.cidr), value: e.value, cidr: e.cidr });
  }
  closeBefore(maxAddress(family) + 1n);
  emit(pos, maxAddress(family), fallback);
  return out;
}

/** The union of blocks as disjoint, non-adjacent intervals in address order. */
export function unionOfCidrs(family: Family, cidrs: readonly Cidr[]): Interval<true>[] {
  const entries = cidrs.map((cidr) => ({ cidr, value: true }));
  const parts = flattenPrefixes<boolean>(family, entries, false, Object.is);
  return parts.filter((p): p is Interval<true> => p.value);
}

/** The block covering exactly [first, last], if there is one. */
export function intervalAsCidr(family: Family, first: bigint, last: bigint): Cidr | undefined {
  const cidr = coveringCidr(family, first, last);
  return cidr.base === first && cidrLast(cidr) === last ? cidr : undefined;
}

/** An interval as nft writes it: `10.0.0.0/8` when it is one block, else `10.0.0.0-10.8.255.255`. */
export function intervalText(iv: Pick<Interval<unknown>, 'family' | 'first' | 'last'>): string {
  const cidr = intervalAsCidr(iv.family, iv.first, iv.last);
  if (cidr !== undefined) return formatCidr(cidr);
  return `${formatIp({ family: iv.family, value: iv.first })}-${formatIp({ family: iv.family, value: iv.last })}`;
}

/** The fewest blocks that cover exactly [first, last], in address order. */
export function intervalCidrs(family: Family, first: bigint, last: bigint): Cidr[] {
  const bits = BITS[family];
  const out: Cidr[] = [];
  for (let pos = first; pos <= last;) {
    // The widest block that starts at `pos` (aligned) and ends by `last`.
    let host = 0;
    while (host < bits && pos % (2n << BigInt(host)) === 0n && pos + (2n << BigInt(host)) - 1n <= last) host++;
    out.push({ family, base: pos, prefix: bits - host });
    pos += 1n << BigInt(host);
  }
  return out;
}

/** The narrowest block containing both `first` and `last`. */
export function coveringCidr(family: Family, first: bigint, last: bigint): Cidr {
  const host = (first ^ last).toString(2).length - (first === last ? 1 : 0);
  const size = 1n << BigInt(host);
  return { family, base: first - (first % size), prefix: BITS[family] - host };
}

/** Two partitions of one family's space cut at each other's boundaries: each piece with both values. */
export function overlayPartitions<A, B>(a: readonly Interval<A>[], b: readonly Interval<B>[]): Interval<readonly [A, B]>[] {
  const out: Interval<readonly [A, B]>[] = [];
  for (let i = 0, j = 0; i < a.length && j < b.length;) {
    const x = a[i]!;
    const y = b[j]!;
    const last = x.last < y.last ? x.last : y.last;
    out.push({ family: x.family, first: x.first > y.first ? x.first : y.first, last, value: [x.value, y.value] });
    if (x.last === last) i++;
    if (y.last === last) j++;
  }
  return out;
}
