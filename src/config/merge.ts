// Combines the fragments read from one or more config sources into the effective config, each
// key as its descriptor (keys.ts) says: lists concatenated (a repeated CIDR dropped), other keys
// agreed on, defaults filled in, a prefix with two actions refused, cidrLimit checked. Pure.
import type { ConfigIssue } from '../errors.js';
import { ConfigError } from '../errors.js';
import { MAX_RESYNC_INTERVAL_MS, MIN_RESYNC_INTERVAL_MS, defaultCidrEntries, type CidrEntry, type ConfigOptions, type MasqConfig } from './config.js';
import type { Position } from './config.js';
import { formatGoDuration } from './duration.js';
import { allListEntries, isKeyShown } from './key-values.js';
import { MAX_CIDRS, maxCidrsFor } from '../limits.js';
import { CIDR_LIST_KEYS, KEYS, LIST_KEYS, type AgreeKey, type ListKey } from './keys.js';
import type { ConfigFragment, LocatedCidrEntry, LocatedSnatEntry, LocatedValue } from './fragment.js';

/** line:column of the CIDR entries of a config, by source and key path. */
export type EntryPositions = ReturnType<typeof indexPositions>;

/** `file:line:col`, or just the source when the position is unknown. */
export const formatWhere = (v: { source: string } & Position): string => (v.line === undefined ? v.source : `${v.source}:${v.line}:${v.column ?? 1}`);
const where = formatWhere;

/** The positions of the CIDR entries of `fragments`, indexed on first use: the agent never asks, so it never pays for them. */
function indexPositions(fragments: readonly ConfigFragment[]) {
  let index: Map<string, LocatedCidrEntry> | undefined;
  const keyOf = (e: { readonly source: string; readonly path: string }): string => `${e.source}\u0000${e.path}`;
  return {
    /** Where `entry` was written; {} when not known (a default entry, or text without lines). */
    of(entry: { readonly source: string; readonly path: string }): Position {
      if (index === undefined) {
        index = new Map();
        for (const f of fragments) for (const key of LIST_KEYS) for (const e of f[key] ?? []) index.set(keyOf(e), e);
      }
      const e = index.get(keyOf(entry));
      return e?.line === undefined ? {} : { line: e.line, ...(e.column === undefined ? {} : { column: e.column }) };
    },
  };
}

const located = (v: { source: string; path: string } & Position) => ({
  source: v.source,
  path: v.path,
  ...(v.line === undefined ? {} : { line: v.line }),
  ...(v.column === undefined ? {} : { column: v.column }),
});

/** The one value of a scalar key across sources; a second, different value is an issue. */
function pickScalar<T>(key: AgreeKey, fragments: readonly ConfigFragment[], issues: ConfigIssue[], valueOf: (f: ConfigFragment) => LocatedValue<T> | undefined): LocatedValue<T> | undefined {
  const values = fragments.flatMap((f) => valueOf(f) ?? []);
  const first = values[0];
  for (const other of values.slice(1)) {
    if (first !== undefined && other.value !== first.value) {
      issues.push({
        ...located(other),
        message: `${key} is set to ${other.written} here but to ${first.written} in ${where(first)}; set it in one file, or to the same value in both`,
      });
    }
  }
  return first;
}

/** What an entry of a destination list asks for, in words, for conflict messages. */
function actionWords(e: LocatedCidrEntry | LocatedSnatEntry, list: string): string {
  if ('toSourceText' in e) return `SNAT to ${e.toSourceText}`;
  return list === 'masqueradeCIDRs' ? 'masquerade' : 'keep the pod IP';
}

/** The first entry of each text, in order; `repeat(e, first)` is called for every later one. */
function firstByText<E extends { readonly text: string }>(entries: readonly E[], repeat: (e: E, first: E) => void): E[] {
  const first = new Map<string, E>();
  for (const e of entries) {
    const f = first.get(e.text);
    if (f === undefined) first.set(e.text, e);
    else repeat(e, f);
  }
  return [...first.values()];
}

/**
 * Drops repeated CIDRs (same canonical block, and for snat the same address), keeping the first,
 * with a warning naming both places; a snat CIDR repeated with another address is a conflict.
 */
function dropDuplicates<E extends LocatedCidrEntry & { readonly toSourceText?: string }>(entries: readonly E[], warnings: ConfigIssue[], issues: ConfigIssue[]): E[] {
  return firstByText(entries, (e, first) => {
    if (first.toSourceText === e.toSourceText) {
      warnings.push({ ...located(e), message: `${e.text} is listed twice: ${where(first)} ${first.path} and ${where(e)} ${e.path}; the second is ignored` });
    } else {
      issues.push({
        ...located(e),
        message: `${e.text} is SNATed to ${e.toSourceText} here (${where(e)} ${e.path}) but to ${first.toSourceText} in ${where(first)} ${first.path}; one destination can leave with one address only`,
      });
    }
  });
}

/** Strips positions so entries have exactly the shape others compare against (a snat entry keeps its address). */
function withoutPosition<T extends CidrEntry & Position>({ line: _line, column: _column, ...entry }: T): Omit<T, keyof Position> {
  return entry;
}

/**
 * Merges fragments (in source order) into the effective config, its warnings (duplicates, clamped
 * values) and where each CIDR entry was written. Throws ConfigError with every issue; `satisfies`
 * makes an agree key added to keys.ts fail to compile until it is merged here.
 */
export function mergeConfigFragments(fragments: readonly ConfigFragment[], opts: ConfigOptions) {
  const issues: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];

  const picked = {
    cidrLimit: pickScalar('cidrLimit', fragments, issues, (f) => f.cidrLimit),
    masqLinkLocal: pickScalar('masqLinkLocal', fragments, issues, (f) => f.masqLinkLocal),
    masqLinkLocalIPv6: pickScalar('masqLinkLocalIPv6', fragments, issues, (f) => f.masqLinkLocalIPv6),
    resyncInterval: pickScalar('resyncInterval', fragments, issues, (f) => f.resyncInterval),
  } satisfies Record<AgreeKey, unknown>;

  // Plain lists first and snat last: the order duplicate warnings have always come in. A
  // nonMasqueradeCIDRs no file sets is the default list.
  const lists = {} as Record<ListKey, readonly LocatedCidrEntry[]>;
  for (const key of [...CIDR_LIST_KEYS, 'snat'] as const) {
    const unset = key === 'nonMasqueradeCIDRs' && fragments.every((f) => f[key] === undefined);
    const given = fragments.flatMap((f) => f[key] ?? []);
    lists[key] = unset ? defaultCidrEntries(opts) : dropDuplicates(given, warnings, issues);
  }
  // The same prefix in two destination lists with different actions has no longest-prefix
  // meaning. (Within one list texts are unique: duplicates were dropped already.)
  const destinations = LIST_KEYS.filter((k) => KEYS[k].role !== 'source').flatMap((list) => lists[list].map((e) => ({ e, list, text: e.text })));
  firstByText(destinations, ({ e, list }, first) => {
    issues.push({
      ...located(e),
      message:
        `${e.text} has two different actions: ${actionWords(e, list)} (${where(e)} ${e.path}) and ${actionWords(first.e, first.list)} (${where(first.e)} ${first.e.path}` +
        `${first.e.source === 'defaults' ? ', the default list: set nonMasqueradeCIDRs to override it' : ''}); a prefix can have one action only, remove one of them`,
    });
  });

  // cidrLimit counts every CIDR of every list, so no list is a way around it.
  const counted = allListEntries(lists);
  const cidrLimit = picked.cidrLimit;
  const limit = cidrLimit?.value ?? KEYS.cidrLimit.default;
  const cap = opts.cidrCap ?? { backend: '', max: maxCidrsFor('') };
  const capOf = cap.backend === '' ? 'any backend' : `the ${cap.backend} backend`;
  if (counted.length > cap.max) {
    // Raising cidrLimit cannot help here, so this replaces the cidrLimit message.
    const firstOver = counted[cap.max]!;
    const other = cap.max < MAX_CIDRS.nftables ? `, or use --backend=nftables (up to ${MAX_CIDRS.nftables.toLocaleString('en')})` : '';
    issues.push({
      ...located(firstOver),
      message:
        `${counted.length.toLocaleString('en')} CIDRs are more than ${capOf} is proven to handle: ${cap.max.toLocaleString('en')} at most, whatever cidrLimit says` +
        `; this is entry ${cap.max + 1}. List fewer CIDRs (merge neighbouring ones into wider blocks)${other}`,
    });
  } else if (counted.length > limit) {
    const firstOver = counted[limit]!;
    issues.push({
      ...located(firstOver),
      message:
        `the daemon can only accept up to ${limit} CIDRs (excluding link-local), but got ${counted.length} CIDRs (excluding link local)` +
        `; this is entry ${limit + 1}. Raise cidrLimit${cidrLimit ? ` (set in ${where(cidrLimit)})` : ''} or list fewer CIDRs`,
    });
  }
  if (issues.length > 0) throw new ConfigError(issues);
  if (cidrLimit !== undefined && cidrLimit.value > cap.max) {
    warnings.push({
      ...located(cidrLimit),
      message: `cidrLimit ${cidrLimit.written} is above what ${capOf} is proven to handle; at most ${cap.max.toLocaleString('en')} CIDRs are accepted`,
    });
  }

  const shown = LIST_KEYS.filter((k) => isKeyShown(lists, k));
  const config = {
    ...Object.fromEntries(shown.map((k) => [k, lists[k].map(withoutPosition)])),
    cidrLimit: limit,
    masqLinkLocal: picked.masqLinkLocal?.value ?? KEYS.masqLinkLocal.default,
    masqLinkLocalIPv6: picked.masqLinkLocalIPv6?.value ?? KEYS.masqLinkLocalIPv6.default,
    ...resolveResyncInterval(picked.resyncInterval, warnings),
  } as MasqConfig;
  return { config, warnings, positions: indexPositions(fragments) };
}

/** resyncInterval's meaning: the period in ms (rounded up, within the floor and Node's timer limit) and its Go text. */
function resolveResyncInterval(resync: LocatedValue<bigint> | undefined, warnings: ConfigIssue[]): Pick<MasqConfig, 'resyncIntervalMs' | 'resyncInterval'> {
  const ns = resync?.value ?? KEYS.resyncInterval.default;
  const resyncInterval = formatGoDuration(ns);
  // Round up so a sub-millisecond interval never becomes a zero-delay timer.
  const ms = Number((ns + 999_999n) / 1_000_000n);
  const floor = formatGoDuration(BigInt(MIN_RESYNC_INTERVAL_MS) * 1_000_000n);
  if (resync && ms > MAX_RESYNC_INTERVAL_MS) {
    warnings.push({
      ...located(resync),
      message: `resyncInterval ${resyncInterval} is longer than the longest timer Node.js supports; using ${formatGoDuration(BigInt(MAX_RESYNC_INTERVAL_MS) * 1_000_000n)}`,
    });
  } else if (resync && ns < BigInt(MIN_RESYNC_INTERVAL_MS) * 1_000_000n) {
    warnings.push({
      ...located(resync),
      message: `resyncInterval ${resync.written} is shorter than ${floor}, the shortest the agent uses; resyncing every ${floor} (config changes are still seen at once through the file watch)`,
    });
  }
  return { resyncIntervalMs: Math.min(Math.max(ms, MIN_RESYNC_INTERVAL_MS), MAX_RESYNC_INTERVAL_MS), resyncInterval };
}

/** The configuration used when no config file sets anything: what merging no fragment gives. */
export function defaultConfig(opts: ConfigOptions): MasqConfig {
  return mergeConfigFragments([], opts).config;
}
