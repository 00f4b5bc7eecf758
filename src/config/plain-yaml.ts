// A fast reader for the plain subset of YAML that config files are written in: a top-level
// block mapping of simple keys whose values are one-line scalars or flow collections, or block
// lists of those or of small block mappings (snat items); or a top-level flow mapping as JSON
// writes one, on one line or pretty-printed. The yaml library builds a syntax tree and a document
// of about 0.7 KB per value and needs 0.6-1.2 s for 50,000 list items; this reads the same text
// line by line in a few milliseconds. It answers only when it is sure to read the text exactly as
// the library does: anything else (a tab, an anchor, a tag, a multi-line scalar, an escape, a
// plain scalar it cannot type by itself, ...) makes it return undefined, and the caller parses
// with the library. Positions are 1-based line and column of where each key and value starts, as
// the library's LineCounter reports them. Pure.
import { MAX_CONFIG_MAP_KEYS, MAX_CONFIG_NODES } from '../limits.js';
import type { Position } from './config.js';

/**
 * A scalar, a list or a mapping, with where it starts: what readPlainYaml reads, and what
 * go-yaml.ts makes of a document the yaml library read. `tagged` is the value the library
 * gives a tagged collection (`!!set`, `!!omap`, a custom tag) in place of its plain reading.
 */
export type PlainNode =
  | { readonly kind: 'scalar'; readonly value: unknown; /** The plain text as written (for numbers in messages); quoted: undefined. */ readonly raw: string | undefined; readonly pos: Position }
  | { readonly kind: 'list'; readonly items: readonly PlainNode[]; readonly pos: Position; readonly tagged?: unknown }
  | { readonly kind: 'map'; readonly pairs: readonly PlainPair[]; readonly pos: Position; readonly tagged?: unknown };

/** One key of a mapping and its value. */
export interface PlainPair {
  readonly key: string;
  readonly keyPos: Position;
  readonly value: PlainNode;
}

/** A simple key: a name such as `nonMasqueradeCIDRs`, then `:`. */
const KEY = /([A-Za-z][A-Za-z0-9]*):(?= |$)/y;

/** Characters of a plain scalar this reader types without doubt (no space, comma, bracket, `#`, quote). */
const PLAIN = /[0-9A-Za-z.:/+][0-9A-Za-z.:/+_\-µμ]*/y;

/** A quoted scalar on one line with nothing to unescape (a JSON string too), by its quote. */
const DOUBLE_QUOTED = /"([\x20\x21\x23-\x5b\x5d-\x7eµμ]*)"/y;
const QUOTED = new Map([
  ['"', DOUBLE_QUOTED],
  ["'", /'([\x20-\x26\x28-\x7eµμ]*)'/y],
]);

/** Deepest nesting read here (a config nests 4 deep: snat, item, cidrs); deeper is the library's to bound and report. */
const MAX_DEPTH = 4;

/** Thrown (and caught in readPlainYaml) when the text leaves the subset. */
class NotPlain extends Error {}

const notPlain = (): never => {
  throw new NotPlain();
};

/** YAML 1.1's booleans (the yaml library's yaml-1.1 schema, bool.js). */
const YAML11_BOOLEANS = new Map<string, boolean>([
  ...['y', 'Y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON'].map((w) => [w, true] as const),
  ...['n', 'N', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF'].map((w) => [w, false] as const),
]);

/** YAML 1.1's nulls; the empty scalar is one too, but a value is never empty here. */
const YAML11_NULLS = new Set(['~', 'null', 'Null', 'NULL']);

/** A decimal integer that no other YAML 1.1 form reads (no sign, `_`, leading 0) and a double holds exactly. */
const PLAIN_INT = /^(?:0|[1-9][0-9]{0,14})$/;

/**
 * YAML 1.1's numbers without a sign, as the config is read (the yaml library's yaml-1.1 schema as
 * go-yaml v2 resolves it, go-yaml.ts: no base-60 forms, and Go's `0o`, `0O`, `0X`, `0B`): binary,
 * octal, decimal and hex integers, floats with and without an exponent (which may start with its
 * `e`). With timestamps (which all hold a `-`), the only typed forms that start with a digit.
 */
const YAML11_NUMBER = /^(?:0[bB][0-1_]+|0[oO][0-7_]+|0[0-7_]+|[0-9][0-9_]*|0[xX][0-9a-fA-F_]+|(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?[eE][-+]?[0-9]+|(?:[0-9][0-9_]*)?\.[0-9_]*)$/;

/**
 * The yaml library's typing of one plain scalar in YAML 1.1, as the config is read, for the forms
 * it is sure of: CIDRs, IP addresses, names, Go durations, booleans, small decimal integers.
 * Undefined for anything else (a null, a float, an octal, a timestamp, ...): the library reads it.
 * Without the library itself: the agent does not load it for a plain config (docs/performance.md).
 */
export function typePlainScalar(raw: string): { value: unknown } | undefined {
  // `x:` is a key, and a lone `:` an indicator; neither is a scalar.
  if (raw.endsWith(':')) return undefined;
  // No YAML 1.1 type (null, bool, int, float, timestamp) has a `/`: a CIDR is always a string.
  if (raw.includes('/')) return { value: raw };
  const first = raw.charCodeAt(0);
  if (first >= 48 && first <= 57) {
    if (PLAIN_INT.test(raw)) return { value: Number(raw) };
    // Any other number, or a timestamp: the library reads it. A Go duration, an IP address: a string.
    return raw.includes('-') || YAML11_NUMBER.test(raw) ? undefined : { value: raw };
  }
  // Of the typed forms, booleans, nulls and floats such as `e5` (the digits before the exponent
  // are optional) start with a letter.
  if ((first >= 65 && first <= 90) || (first >= 97 && first <= 122)) {
    const bool = YAML11_BOOLEANS.get(raw);
    if (bool !== undefined) return { value: bool };
    return YAML11_NULLS.has(raw) || YAML11_NUMBER.test(raw) ? undefined : { value: raw };
  }
  // `.5`, `+1`, `-1`, `.inf`, `~`, `:x`, ...: the library knows best.
  return undefined;
}

/** One line of the text: its content without the line break, its number, and the spaces it starts with. */
interface Line {
  readonly text: string;
  readonly number: number;
  readonly indent: number;
}

/** The rest of a line after a value: spaces, then nothing or a comment. */
const ENDS_LINE = /( +#.*| *)$/y;

/** Whether the line ends at `column` (spaces, then nothing or a comment). */
function endsAt(text: string, column: number): boolean {
  if (column === text.length) return true;
  ENDS_LINE.lastIndex = column;
  return ENDS_LINE.test(text);
}

/** The key starting at `column` of `text`, if one does. */
function keyAt(text: string, column: number): RegExpExecArray | null {
  KEY.lastIndex = column;
  return KEY.exec(text);
}

/**
 * Reads `text` as a top-level mapping in the plain subset, or returns undefined when the text
 * is outside it (the caller then parses it with the yaml library). A plain list item without a
 * `/` (never a CIDR) ends the fast read at once, so a list of 100,000 numbers costs no per-item
 * typing before the library reports it.
 */
export function readPlainYaml(text: string): readonly PlainPair[] | undefined {
  const lines: Line[] = [];
  for (let start = 0, number = 1; start <= text.length; number++) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    // `\r\n` ends a line as `\n` does. Other breaks (a lone `\r`, NEL, LS, PS) are written as `\n`
    // by the caller (line-breaks.ts); here they are content, and leave the subset.
    const content = end < text.length && text.charCodeAt(end - 1) === 13 ? text.slice(start, end - 1) : text.slice(start, end);
    let indent = 0;
    while (content.charCodeAt(indent) === 32) indent++;
    // Blank lines and comment lines carry nothing; the library skips them the same way. A line split
    // by hand: three times faster than split() and a filter for 50,000 lines.
    if (indent < content.length && content.charCodeAt(indent) !== 35) lines.push({ text: content, number, indent });
    start = end + 1;
  }
  try {
    return new PlainReader(lines).readDocument();
  } catch (err) {
    if (err instanceof NotPlain) return undefined;
    throw err;
  }
}

/**
 * Reads the content lines of one text, block or flow. Counts the values and keys it reads as
 * countYamlNodes (guard.ts) counts them, or one more where a block collection has no token, and
 * stops where that count would refuse the text, before building more.
 */
class PlainReader {
  private nodes = 0;
  /** Where flow is read: line index and column. */
  private li = 0;
  private col = 0;
  /** Whether flow may go on over the next lines (a top-level `{`, as JSON writes it). */
  private multiline = false;

  constructor(private readonly lines: readonly Line[]) {}

  /** The top level: a flow mapping, or a block mapping at column 0 read as a snat item's; a line it does not take (a `-`) leaves the subset. */
  readDocument(): readonly PlainPair[] {
    const first = this.lines[0];
    if (first === undefined) return [];
    this.col = first.indent;
    if (first.text[this.col] !== '{') {
      const { pairs, next } = this.readBlockMap(0, 0, 1);
      return next < this.lines.length ? notPlain() : pairs;
    }
    this.multiline = true;
    const node = this.readFlow(0);
    this.gap();
    return node.kind !== 'map' || this.li < this.lines.length - 1 || this.col < this.lines[this.li]!.text.length ? notPlain() : node.pairs;
  }

  private count(): void {
    if (++this.nodes > MAX_CONFIG_NODES) notPlain();
  }

  /** Adds a key to a mapping; a repeated key, or more than the guard allows, is the library's to report. */
  private addPair(pairs: PlainPair[], pair: PlainPair): void {
    this.count();
    if (pairs.length >= MAX_CONFIG_MAP_KEYS || pairs.some((p) => p.key === pair.key)) notPlain();
    pairs.push(pair);
  }

  /** A block mapping whose keys sit at `column` from line `i`: the top level, or a list item's (`- cidrs: [...]`, `  toSource: ...`). */
  private readBlockMap(i: number, column: number, depth: number): { pairs: PlainPair[]; next: number } {
    if (depth > MAX_DEPTH) notPlain();
    const pairs: PlainPair[] = [];
    while (i < this.lines.length) {
      const line = this.lines[i]!;
      if (pairs.length > 0) {
        if (line.indent < column) break;
        if (line.indent > column) notPlain();
        // An indentless list under the previous key is read by readBlockList; a `-` here ends the map.
        if (line.text[column] === '-') break;
      }
      i = this.readBlockEntry(pairs, i, column, depth);
    }
    return { pairs, next: i };
  }

  /** A `key: value` (or `key:` and a block list below) whose key starts at `column` of line `i`; returns the line after it. */
  private readBlockEntry(pairs: PlainPair[], i: number, column: number, depth: number): number {
    const line = this.lines[i]!;
    const m = keyAt(line.text, column) ?? notPlain();
    const key = m[1]!;
    // A YAML 1.1 boolean or null as a key would not be the string it looks like.
    if (YAML11_BOOLEANS.has(key) || YAML11_NULLS.has(key)) notPlain();
    const keyPos = { line: line.number, column: column + 1 };
    this.col = column + m[0].length;
    if (endsAt(line.text, this.col)) {
      // `key:` alone: a block list must follow (anything else, such as a null, goes the slow way).
      const list = this.readBlockList(i + 1, column, depth + 1);
      this.addPair(pairs, { key, keyPos, value: list.node });
      return list.next;
    }
    while (line.text.charCodeAt(this.col) === 32) this.col++;
    this.li = i;
    const value = this.readFlow(depth);
    if (!endsAt(line.text, this.col)) notPlain();
    this.addPair(pairs, { key, keyPos, value });
    return i + 1;
  }

  /** A list of at least one item from line `i`, its `-` at or right of `keyColumn`, where its key is. */
  private readBlockList(i: number, keyColumn: number, depth: number): { node: PlainNode; next: number } {
    const { indent } = this.lines[i] ?? notPlain();
    if (depth > MAX_DEPTH || indent < keyColumn) notPlain();
    this.count();
    const items: PlainNode[] = [];
    const pos = { line: this.lines[i]!.number, column: indent + 1 };
    while (i < this.lines.length) {
      const line = this.lines[i]!;
      if (line.indent < indent) break;
      if (line.indent > indent) notPlain();
      if (line.text[indent] !== '-') {
        // The next key of the enclosing mapping, at the same column as an indentless list.
        if (indent === keyColumn) break;
        notPlain();
      }
      if (line.text[indent + 1] !== ' ') notPlain();
      let column = indent + 2;
      while (line.text.charCodeAt(column) === 32) column++;
      if (keyAt(line.text, column)) {
        this.count();
        const map = this.readBlockMap(i, column, depth + 1);
        items.push({ kind: 'map', pairs: map.pairs, pos: { line: line.number, column: column + 1 } });
        i = map.next;
        continue;
      }
      this.li = i;
      this.col = column;
      items.push(this.readListItem(depth));
      if (!endsAt(line.text, this.col)) notPlain();
      i++;
    }
    if (items.length === 0) notPlain();
    return { node: { kind: 'list', items, pos }, next: i };
  }

  /** The character where flow is read ('' at the end of a line). */
  private char(): string {
    return this.lines[this.li]!.text.charAt(this.col);
  }

  /** Skips spaces, and in multi-line flow the break to the next line when no other line lies between. */
  private gap(): void {
    for (;;) {
      const line = this.lines[this.li]!;
      while (line.text.charCodeAt(this.col) === 32) this.col++;
      if (!this.multiline || this.col < line.text.length || this.lines[this.li + 1]?.number !== line.number + 1) return;
      this.li++;
      this.col = 0;
    }
  }

  /** A list item; a plain one without a `/` cannot be a CIDR: the library reports it. */
  private readListItem(depth: number): PlainNode {
    const item = this.readFlow(depth);
    if (item.kind === 'scalar' && item.raw !== undefined && !item.raw.includes('/')) notPlain();
    return item;
  }

  /** A scalar (plain, or quoted with nothing to unescape) or a flow collection inside one at nesting `depth`; flow is read past it. */
  private readFlow(depth: number): PlainNode {
    const line = this.lines[this.li]!;
    const pos = { line: line.number, column: this.col + 1 };
    const open = line.text.charAt(this.col);
    this.count();
    if (open !== '[' && open !== '{') {
      const quoted = QUOTED.get(open);
      const re = quoted ?? PLAIN;
      re.lastIndex = this.col;
      const m = re.exec(line.text) ?? notPlain();
      this.col += m[0].length;
      if (quoted) return { kind: 'scalar', value: m[1]!, raw: undefined, pos };
      return { kind: 'scalar', value: (typePlainScalar(m[0]) ?? notPlain()).value, raw: m[0], pos };
    }
    if (depth >= MAX_DEPTH) notPlain();
    const close = open === '[' ? ']' : '}';
    const items: PlainNode[] = [];
    const pairs: PlainPair[] = [];
    this.col++;
    this.gap();
    if (this.char() !== close) {
      for (;;) {
        if (open === '[') items.push(this.readListItem(depth + 1));
        else this.readFlowPair(pairs, depth + 1);
        this.gap();
        const c = this.char();
        if (c === close) break;
        if (c !== ',') notPlain();
        this.col++;
        this.gap();
        // `[a,]` and `[a, ]`: the library's reading of a trailing comma is left to it.
        if (this.char() === close) notPlain();
      }
    }
    this.col++;
    return open === '[' ? { kind: 'list', items, pos } : { kind: 'map', pairs, pos };
  }

  /** A `"key": value` of a flow mapping at nesting `depth`: the key quoted and its `:` on the same line, as JSON writes them. */
  private readFlowPair(pairs: PlainPair[], depth: number): void {
    const line = this.lines[this.li]!;
    const keyPos = { line: line.number, column: this.col + 1 };
    DOUBLE_QUOTED.lastIndex = this.col;
    const m = DOUBLE_QUOTED.exec(line.text) ?? notPlain();
    this.col += m[0].length;
    while (this.char() === ' ') this.col++;
    if (this.char() !== ':') notPlain();
    this.col++;
    this.gap();
    this.addPair(pairs, { key: m[1]!, keyPos, value: this.readFlow(depth) });
  }
}

/** The plain JavaScript value of a node, as the library's toJS gives it. */
export function plainValue(node: PlainNode): unknown {
  switch (node.kind) {
    case 'scalar':
      return node.value;
    case 'list':
      return 'tagged' in node ? node.tagged : node.items.map(plainValue);
    case 'map':
      return 'tagged' in node ? node.tagged : Object.fromEntries(node.pairs.map((p) => [p.key, plainValue(p.value)]));
  }
}

/** The node at a key path below `node` (list indexes and map keys), if there is one. */
export function plainNodeAt(node: PlainNode, path: readonly (string | number)[]): PlainNode | undefined {
  let at: PlainNode | undefined = node;
  for (const part of path) {
    if (at === undefined) return undefined;
    if (at.kind === 'list' && typeof part === 'number') at = at.items[part];
    else if (at.kind === 'map' && typeof part === 'string') at = at.pairs.find((p) => p.key === part)?.value;
    else return undefined;
  }
  return at;
}
