// Reads the keys of one config text into a ConfigFragment (each traced to file, line:column and
// key path), whatever read the text: the plain reader (plain-yaml.ts) for the common case, or the
// yaml library (parse.ts) for the rest. Without the yaml library on purpose: the agent loads it
// only for a text the plain reader does not take (docs/performance.md). Pure.
import { editDistance } from '../edit-distance.js';
import type { ConfigIssue } from '../errors.js';
import { cutExcerpt, quoteExcerpt } from '../excerpt.js';
import { CidrError, formatCidr, formatIp, parseCidr, parseIp } from '../net/cidr.js';
import type { CidrEntry, ConfigOptions, Position, SnatCidrEntry } from './config.js';
import { DurationError, parseGoDuration } from './duration.js';
import { CONFIG_KEYS, isCidrListKey, type CidrListKey, type ConfigKey } from './keys.js';
import { structureFaults, type PathPart } from './structure.js';
import { toLineFeeds } from './line-breaks.js';
import { plainNodeAt, plainValue, readPlainYaml, type PlainNode } from './plain-yaml.js';

/** Longer than any CIDR or Go duration can be: such a value is refused without echoing it whole. */
const MAX_VALUE_TEXT = 100;

/** A CIDR entry with the line:column it was written at. */
export interface LocatedCidrEntry extends CidrEntry, Position {}

/** A `snat` destination CIDR with the line:column it was written at. */
export interface LocatedSnatEntry extends SnatCidrEntry, Position {}

/** A scalar setting with where it was written. */
export interface LocatedValue<T> extends Position {
  readonly value: T;
  /** The value as written, for messages. */
  readonly written: string;
  readonly source: string;
  readonly path: string;
}

/** What one config source sets; a key the source leaves out is undefined. */
export interface ConfigFragment extends Readonly<Partial<Record<CidrListKey, readonly LocatedCidrEntry[]>>> {
  readonly source: string;
  /** One entry per destination CIDR of every `snat` item. */
  readonly snat?: readonly LocatedSnatEntry[];
  readonly cidrLimit?: LocatedValue<number>;
  readonly masqLinkLocal?: LocatedValue<boolean>;
  readonly masqLinkLocalIPv6?: LocatedValue<boolean>;
  /** Nanoseconds, already checked not negative (merge applies the floor). */
  readonly resyncInterval?: LocatedValue<bigint>;
}

/** The outcome of reading one source: what it sets, its errors and its warnings. */
export interface FragmentResult {
  readonly fragment: ConfigFragment;
  readonly issues: readonly ConfigIssue[];
  readonly warnings: readonly ConfigIssue[];
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Whether a fragment sets no key at all (empty file, comments only, `null`, `{}`). */
export function isEmptyFragment(f: ConfigFragment): boolean {
  return CONFIG_KEYS.every((k) => f[k] === undefined);
}

/** `nonMasqueradeCIDRs[2]` from `['nonMasqueradeCIDRs', 2]`. */
function formatKeyPath(parts: readonly PathPart[]): string {
  return parts.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

/** Whether every character of `short` appears in `long`, in order. */
function isSubsequence(short: string, long: string): boolean {
  let i = 0;
  for (const c of long) if (c === short[i]) i++;
  return i === short.length;
}

/** The known key an unknown one most likely meant, if any is close. */
export function suggestKey(key: string): ConfigKey | undefined {
  const lower = key.toLowerCase();
  let best: ConfigKey | undefined;
  let bestDistance = Infinity;
  for (const known of CONFIG_KEYS) {
    const k = known.toLowerCase();
    // An abbreviation (`nonMasqCIDRs`, `resync`) is far in edits but obviously meant.
    const d = lower.length >= 4 && isSubsequence(lower, k) ? 1 : editDistance(lower, k);
    if (d < bestDistance) {
      best = known;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 4)) ? best : undefined;
}

/** Longest number literal quoted in a message, in characters. */
const NUMBER_TEXT_MAX = 40;

/**
 * One top-level key as written (undefined when it is not a plain scalar name) and its value, which
 * a reader may build only when it is asked for (a key that is refused never builds its value);
 * asking may throw a ValueError.
 */
export interface TopEntry {
  readonly key: string | undefined;
  readonly keyPos: Position;
  readonly value: PlainNode;
}

/** A value that cannot be read (an unresolved or excessive alias, a merge go-yaml v2 refuses), and where. */
export class ValueError extends Error {
  constructor(
    message: string,
    readonly pos: Position,
  ) {
    super(message);
    this.name = 'ValueError';
  }
}

/** Cuts a number's source text to NUMBER_TEXT_MAX characters. */
export function cutNumberText(raw: string): string {
  return raw.length > NUMBER_TEXT_MAX ? `${raw.slice(0, NUMBER_TEXT_MAX)}... (cut, ${raw.length} characters)` : raw;
}

/**
 * The fast way for the common case: text in the plain subset (plain-yaml.ts, JSON included), read
 * into the nodes the yaml library's reading gives (go-yaml.ts), so every message and its
 * line:column is the one that reading gives. Undefined when the text is outside the subset.
 */
export function readPlainFragment(written: string, source: string, opts: ConfigOptions): FragmentResult | undefined {
  // Every line break go-yaml v2 knows as LF, at the same offsets; a JSON text the reference refuses for one is the library path's to report.
  const { text } = toLineFeeds(written);
  if (text === undefined) return undefined;
  const pairs = readPlainYaml(text);
  return pairs && readEntries(pairs, source, opts);
}

/** Reading order, whichever check found the problem. */
export const byPosition = (a: ConfigIssue, b: ConfigIssue) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0);

/** Checks the top-level keys of a config and reads what each sets. */
export function readEntries(entries: readonly TopEntry[], source: string, opts: ConfigOptions): FragmentResult {
  const issues: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const fragment: Mutable<ConfigFragment> = { source };
  const issue = (path: string, pos: Position, message: string): ConfigIssue => ({ source, path, ...pos, message });
  const seen = new Map<ConfigKey, string>();
  for (const entry of entries) {
    const { key: written, keyPos } = entry;
    if (written === undefined) {
      issues.push(issue('', keyPos, 'keys must be plain names such as nonMasqueradeCIDRs'));
      continue;
    }
    const key = CONFIG_KEYS.find((k) => k === written) ?? CONFIG_KEYS.find((k) => k.toLowerCase() === written.toLowerCase());
    if (key === undefined) {
      // No known key is near a long one, and the edit distance costs its length times each key.
      const hint = written.length <= MAX_VALUE_TEXT ? suggestKey(written) : undefined;
      issues.push(issue(cutExcerpt(written), keyPos, `unknown key ${quoteExcerpt(written)}` + (hint ? `; did you mean ${JSON.stringify(hint)}?` : '.') + ` Known keys: ${CONFIG_KEYS.join(', ')}`));
      continue;
    }
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      issues.push(issue(written, keyPos, `key ${JSON.stringify(written)} repeats ${JSON.stringify(earlier)} (keys match regardless of case, as in the reference agent); keep one`));
      continue;
    }
    seen.set(key, written);
    if (written !== key) {
      warnings.push(
        issue(written, keyPos, `key ${JSON.stringify(written)} is read as ${JSON.stringify(key)} (keys match regardless of case, as in the reference agent); write ${JSON.stringify(key)}`),
      );
    }

    let node: PlainNode;
    try {
      node = entry.value;
    } catch (err) {
      if (!(err instanceof ValueError)) throw err;
      issues.push(issue(key, err.pos, err.message));
      continue;
    }
    // Where the value, or its part at `rest`, starts (the key when that is not known); a number's text as written there.
    const locate = (rest: readonly PathPart[]): Position => {
      const pos = plainNodeAt(node, rest)?.pos;
      return pos?.line === undefined ? keyPos : pos;
    };
    const writtenNumber = (rest: readonly PathPart[]): string | undefined => {
      const at = plainNodeAt(node, rest);
      return at?.kind === 'scalar' && typeof at.value === 'number' && at.raw !== undefined ? cutNumberText(at.raw) : undefined;
    };
    const report = (rest: readonly PathPart[], pos: Position, message: string) => issues.push(issue(formatKeyPath([key, ...rest]), pos, message));
    readKey({ key, source, opts, fragment, locate, writtenNumber, report }, plainValue(node));
  }
  return { fragment, issues: issues.sort(byPosition), warnings: warnings.sort(byPosition) };
}

/** One key being read: its source and the flags, the fragment it sets, where its parts are, and where its problems go. */
interface KeyReading {
  readonly key: ConfigKey;
  readonly source: string;
  readonly opts: ConfigOptions;
  readonly fragment: Mutable<ConfigFragment>;
  readonly locate: (rest: readonly PathPart[]) => Position;
  readonly writtenNumber: (rest: readonly PathPart[]) => string | undefined;
  readonly report: (rest: readonly PathPart[], pos: Position, message: string) => void;
}

/** The CIDR string at `rest` (key path `path`) of the key, checked; undefined (and reported) when it is not a usable CIDR. */
function readCidr(r: KeyReading, text: unknown, rest: readonly PathPart[], path: string): LocatedCidrEntry | undefined {
  if (typeof text !== 'string') return undefined;
  const pos = r.locate(rest);
  if (text.length > MAX_VALUE_TEXT) {
    r.report(rest, pos, `CIDR ${quoteExcerpt(text)} could not be parsed: far too long for a CIDR`);
    return undefined;
  }
  try {
    const cidr = parseCidr(text);
    if (cidr.family === 'ipv6' && !r.opts.enableIPv6) {
      r.report(rest, pos, `ipv6 is not enabled, but ipv6 cidr ${text} provided. Enable ipv6 using --enable-ipv6 agent flag`);
      return undefined;
    }
    return { cidr, text: formatCidr(cidr), source: r.source, path, ...pos };
  } catch (err) {
    if (!(err instanceof CidrError)) throw err;
    r.report(rest, pos, err.message);
    return undefined;
  }
}

/** Reads one known key's value into the fragment, reporting every problem. */
function readKey(r: KeyReading, value: unknown): void {
  const faults = structureFaults(r.key, value, r.writtenNumber);
  for (const f of faults) r.report(f.rest, r.locate(f.rest), f.message);
  const structureOk = faults.length === 0;
  // Check every CIDR string of a list even when other items have the wrong type, so one
  // round of fixes is enough.
  if (isCidrListKey(r.key) && Array.isArray(value)) {
    const entries: LocatedCidrEntry[] = [];
    value.forEach((text: unknown, i) => {
      const entry = readCidr(r, text, [i], `${r.key}[${i}]`);
      if (entry) entries.push(entry);
    });
    if (structureOk) r.fragment[r.key] = entries;
    return;
  }
  if (r.key === 'snat' && Array.isArray(value)) {
    const entries = readSnat(r, value);
    if (structureOk) r.fragment.snat = entries;
    return;
  }
  if (!structureOk) return;
  const { key } = r;
  const pos = r.locate([]);
  const set = <T>(v: T, written: string): LocatedValue<T> => ({ value: v, written, source: r.source, path: key, ...pos });
  if (key === 'cidrLimit') r.fragment.cidrLimit = set(value as number, r.writtenNumber([]) ?? String(value));
  else if (key === 'masqLinkLocal' || key === 'masqLinkLocalIPv6') r.fragment[key] = set(value as boolean, String(value));
  if (key !== 'resyncInterval') return;
  const text = value as string;
  if (text.length > MAX_VALUE_TEXT) {
    r.report([], pos, `resyncInterval ${quoteExcerpt(text)} is far too long for a duration (write a Go duration such as "60s", "1m30s" or "500ms")`);
    return;
  }
  try {
    const ns = parseGoDuration(text);
    // Zero is a valid Go duration (the reference then resyncs in a busy loop); the floor in
    // merge turns it into a sane period. A negative one is no period at all.
    if (ns < 0n) r.report([], pos, `resyncInterval must not be negative, got ${quoteExcerpt(text)}; write a Go duration such as "60s"`);
    else r.fragment.resyncInterval = set(ns, text);
  } catch (err) {
    if (!(err instanceof DurationError)) throw err;
    r.report([], pos, `${err.message} (write a Go duration such as "60s", "1m30s" or "500ms")`);
  }
}

/** The destinations of every snat item, each with the item's address; what is wrong is reported. */
function readSnat(r: KeyReading, items: readonly unknown[]): LocatedSnatEntry[] {
  const entries: LocatedSnatEntry[] = [];
  items.forEach((item: unknown, i) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) return;
    const { cidrs, toSource } = item as { cidrs?: unknown; toSource?: unknown };
    if (typeof toSource !== 'string') return;
    const sourcePos = r.locate([i, 'toSource']);
    let address;
    try {
      if (toSource.length > MAX_VALUE_TEXT) throw new CidrError('unparsable', 'far too long');
      address = parseIp(toSource);
    } catch (err) {
      if (!(err instanceof CidrError)) throw err;
      r.report([i, 'toSource'], sourcePos, `toSource ${quoteExcerpt(toSource)} is not an IP address (write one address of this node, e.g. 198.51.100.9)`);
      return;
    }
    if (address.family === 'ipv6' && !r.opts.enableIPv6) {
      r.report([i, 'toSource'], sourcePos, `ipv6 is not enabled, but ipv6 toSource ${toSource} provided. Enable ipv6 using --enable-ipv6 agent flag`);
      return;
    }
    if (!Array.isArray(cidrs)) return;
    cidrs.forEach((text: unknown, j) => {
      const entry = readCidr(r, text, [i, 'cidrs', j], `snat[${i}].cidrs[${j}]`);
      if (!entry) return;
      if (entry.cidr.family !== address.family) {
        r.report(
          [i, 'cidrs', j],
          r.locate([i, 'cidrs', j]),
          `${entry.text} is ${entry.cidr.family} but toSource ${formatIp(address)} is ${address.family}; SNAT keeps the family, so list ${entry.cidr.family} destinations under a ${entry.cidr.family} toSource`,
        );
        return;
      }
      entries.push({ ...entry, toSource: address, toSourceText: formatIp(address) });
    });
  });
  return entries;
}
