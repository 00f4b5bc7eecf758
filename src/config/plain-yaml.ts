// A fast reader for the plain subset of YAML that config files are written in: a top-level
// block mapping of simple keys whose values are one-line scalars, one-line flow lists, or block
// lists of one-line scalars or of small block mappings (snat items). The yaml library builds a
// syntax tree and a document of about 0.7 KB per value and needs 0.6-1.2 s for 50,000 list
// items; this reads the same text line by line in a few milliseconds. It answers only when it is
// sure to read the text exactly as the library does: anything else (a tab, an anchor, a tag, a
// multi-line scalar, a `{`, a plain scalar it cannot type by itself, ...) makes it return
// undefined, and the caller parses with the library. Positions are 1-based line and column of
// where each key and value starts, as the library's LineCounter reports them. Pure.
import { MAX_CONFIG_NODES } from '../limits.js';
import type { Position } from './config.js';

/**
 * A scalar, a list or a mapping, with where it starts: what readPlainYaml and readPlainJson read,
 * and what go-yaml.ts makes of a document the yaml library read. `tagged` is the value the library
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
const KEY = /^([A-Za-z][A-Za-z0-9]*):(?= |$)/;

/** Characters of a plain scalar this reader types without doubt (no space, comma, bracket, `#`, quote). */
const PLAIN = /[0-9A-Za-z.:/+][0-9A-Za-z.:/+_\-µμ]*/y;

/** A quoted scalar on one line with nothing to unescape (a JSON string too: plain-json.ts). */
export const DOUBLE_QUOTED = /"([\x20\x21\x23-\x5b\x5d-\x7eµμ]*)"/y;
const SINGLE_QUOTED = /'([\x20-\x26\x28-\x7eµμ]*)'/y;

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
 * Anything else (a null, a float, an octal, a timestamp, ...) leaves the subset, and the library
 * reads the text.
 * Without the library itself: the agent does not load it for a plain config (docs/performance.md).
 */
function typePlain(raw: string): unknown {
  // `x:` at the end of a line starts a mapping, not a scalar; the library says what it makes of it.
  if (raw.endsWith(':')) return notPlain();
  // No YAML 1.1 type (null, bool, int, float, timestamp) has a `/`: a CIDR is always a string.
  if (raw.includes('/')) return raw;
  const first = raw.charCodeAt(0);
  if (first >= 48 && first <= 57) {
    if (PLAIN_INT.test(raw)) return Number(raw);
    // Any other number, or a timestamp: the library reads it. A Go duration, an IP address: a string.
    return raw.includes('-') || YAML11_NUMBER.test(raw) ? notPlain() : raw;
  }
  // Of the typed forms, booleans, nulls and floats such as `e5` (the digits before the exponent
  // are optional) start with a letter.
  if ((first >= 65 && first <= 90) || (first >= 97 && first <= 122)) {
    const bool = YAML11_BOOLEANS.get(raw);
    if (bool !== undefined) return bool;
    return YAML11_NULLS.has(raw) || YAML11_NUMBER.test(raw) ? notPlain() : raw;
  }
  // `.5`, `+1`, `-1`, `.inf`, `~`, `:x`, ...: the library knows best.
  return notPlain();
}

/** The library's typing of one plain scalar (YAML 1.1); undefined when the library would warn or fail. */
export function typePlainScalar(raw: string): { value: unknown } | undefined {
  try {
    return { value: typePlain(raw) };
  } catch (err) {
    if (err instanceof NotPlain) return undefined;
    throw err;
  }
}

/** One line of the text: its content without the line break, and where it starts. */
interface Line {
  readonly text: string;
  readonly number: number;
}

/** The rest of a line after a value: spaces, then nothing or a comment. */
const ENDS_LINE = /( +#.*| *)$/y;

/** Whether the line ends at `column` (spaces, then nothing or a comment). */
function endsAt(text: string, column: number): boolean {
  if (column === text.length) return true;
  ENDS_LINE.lastIndex = column;
  return ENDS_LINE.test(text);
}

/**
 * Reads `text` as a top-level mapping in the plain subset, or returns undefined when the text
 * is outside it (the caller then parses it with the yaml library). A plain list item without a
 * `/` (never a CIDR) ends the fast read at once, so a list of 100,000 numbers costs no per-item
 * typing before the library reports it.
 */
export function readPlainYaml(text: string): PlainPair[] | undefined {
  const lines: Line[] = [];
  let start = 0;
  let number = 1;
  while (start <= text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    // `\r\n` ends a line as `\n` does. Other breaks (a lone `\r`, NEL, LS, PS) are written as `\n`
    // by the caller (line-breaks.ts); here they are content, and leave the subset.
    const content = end < text.length && end > start && text.charCodeAt(end - 1) === 13 ? text.slice(start, end - 1) : text.slice(start, end);
    // Blank lines and comment lines carry nothing; the library skips them the same way.
    let first = 0;
    while (content.charCodeAt(first) === 32) first++;
    if (first < content.length && content.charCodeAt(first) !== 35) lines.push({ text: content, number });
    start = end + 1;
    number++;
  }
  // Each line holds a value at least: past the limit the library's count refuses the text, before building anything.
  if (lines.length > MAX_CONFIG_NODES) return undefined;
  try {
    return readDocument(lines);
  } catch (err) {
    if (err instanceof NotPlain) return undefined;
    throw err;
  }
}

function indentOf(line: Line): number {
  let i = 0;
  while (line.text.charCodeAt(i) === 32) i++;
  return i;
}

/** The top level: a mapping at column 0, read as a snat item's; a line it does not take (a `-`) leaves the subset. */
function readDocument(lines: readonly Line[]): PlainPair[] {
  if (lines.length === 0) return [];
  const { pairs, next } = readItemMap(lines, 0, 0);
  return next < lines.length ? notPlain() : pairs;
}

/** A `key: value` (or `key:` and a block list below) whose key starts at `column` (0-based) of line `i`; a block list below must sit at `parentIndent` or deeper. */
function readMapEntry(lines: readonly Line[], i: number, column: number, parentIndent: number): { pair: PlainPair; next: number } {
  const line = lines[i]!;
  const rest = line.text.slice(column);
  const m = KEY.exec(rest) ?? notPlain();
  const key = m[1]!;
  // A YAML 1.1 boolean or null as a key would not be the string it looks like.
  if (/^(y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL)$/.test(key)) notPlain();
  const keyPos = { line: line.number, column: column + 1 };
  const afterKey = column + m[0].length;
  if (endsAt(line.text, afterKey)) {
    // `key:` alone: a block list must follow (anything else, such as a null, goes the slow way).
    const next = lines[i + 1];
    if (next === undefined) notPlain();
    const indent = indentOf(next!);
    if (indent < parentIndent || next!.text[indent] !== '-') notPlain();
    return readBlockList(lines, i + 1, indent, column, key, keyPos);
  }
  let valueColumn = afterKey;
  while (line.text.charCodeAt(valueColumn) === 32) valueColumn++;
  const { node, end } = readInline(line, valueColumn);
  if (!endsAt(line.text, end)) notPlain();
  return { pair: { key, keyPos, value: node }, next: i + 1 };
}

/** A list whose `-` sit at `indent`, starting at line `i`; it belongs to a key at `keyColumn`. */
function readBlockList(lines: readonly Line[], i: number, indent: number, keyColumn: number, key: string, keyPos: Position): { pair: PlainPair; next: number } {
  // A list at the key's own column is allowed only for a key at column 0 (top level) or a map in a list.
  if (indent < keyColumn) notPlain();
  const items: PlainNode[] = [];
  const first = lines[i]!;
  const pos = { line: first.number, column: indent + 1 };
  while (i < lines.length) {
    const line = lines[i]!;
    const lineIndent = indentOf(line);
    if (lineIndent < indent) break;
    if (lineIndent > indent) notPlain();
    if (line.text[indent] !== '-') {
      // The next key of the enclosing mapping, at the same column as an indentless list.
      if (lineIndent === keyColumn) break;
      notPlain();
    }
    if (line.text[indent + 1] !== ' ') notPlain();
    let valueColumn = indent + 2;
    while (line.text.charCodeAt(valueColumn) === 32) valueColumn++;
    const c = line.text[valueColumn];
    if (c === undefined || c === '#') notPlain();
    if (/^[A-Za-z]/.test(c!) && KEY.test(line.text.slice(valueColumn))) {
      const map = readItemMap(lines, i, valueColumn);
      items.push({ kind: 'map', pairs: map.pairs, pos: map.pos });
      i = map.next;
      continue;
    }
    const { node, end } = readInline(line, valueColumn);
    if (!endsAt(line.text, end)) notPlain();
    // A plain item without a `/` cannot be a CIDR: let the library report it.
    if (node.kind === 'scalar' && node.raw !== undefined && !node.raw.includes('/')) notPlain();
    items.push(node);
    i++;
  }
  return { pair: { key, keyPos, value: { kind: 'list', items, pos } }, next: i };
}

/** A block mapping whose keys sit at `column`: the top level, or a list item's (`- cidrs: [...]`, `  toSource: ...`). */
function readItemMap(lines: readonly Line[], i: number, column: number): { pairs: PlainPair[]; pos: Position; next: number } {
  const pairs: PlainPair[] = [];
  const keys = new Set<string>();
  const pos = { line: lines[i]!.number, column: column + 1 };
  let first = true;
  while (i < lines.length) {
    const line = lines[i]!;
    if (!first) {
      const indent = indentOf(line);
      if (indent < column) break;
      if (indent > column) notPlain();
      // An indentless list under the previous key is read by readBlockList; a `-` here ends the map.
      if (line.text[indent] === '-') break;
    }
    first = false;
    const entry = readMapEntry(lines, i, column, column);
    // A repeated key is the library's error to report.
    if (keys.has(entry.pair.key)) notPlain();
    keys.add(entry.pair.key);
    pairs.push(entry.pair);
    i = entry.next;
  }
  return { pairs, pos, next: i };
}

/** A scalar or a one-line flow list starting at `column` of the line; `end` is the column after it. */
function readInline(line: Line, column: number): { node: PlainNode; end: number } {
  const pos = { line: line.number, column: column + 1 };
  if (line.text[column] === '[') {
    const items: PlainNode[] = [];
    let j = column + 1;
    const skip = () => {
      while (line.text.charCodeAt(j) === 32) j++;
    };
    skip();
    if (line.text[j] === ']') return { node: { kind: 'list', items, pos }, end: j + 1 };
    for (;;) {
      const item = readScalar(line, j);
      if (items.length >= MAX_CONFIG_NODES) notPlain();
      items.push(item.node);
      j = item.end;
      skip();
      const c = line.text[j];
      if (c === ']') return { node: { kind: 'list', items, pos }, end: j + 1 };
      if (c !== ',') notPlain();
      j++;
      skip();
      // `[a,]` and `[a, ]`: the library's reading of a trailing comma is left to it.
      if (line.text[j] === ']') notPlain();
    }
  }
  return readScalar(line, column);
}

/** One scalar (plain, or quoted with nothing to unescape) at `column`. */
function readScalar(line: Line, column: number): { node: PlainNode; end: number } {
  const pos = { line: line.number, column: column + 1 };
  const c = line.text.charCodeAt(column);
  if (c === 34 || c === 39) {
    const re = c === 34 ? DOUBLE_QUOTED : SINGLE_QUOTED;
    re.lastIndex = column;
    const quoted = re.exec(line.text) ?? notPlain();
    return { node: { kind: 'scalar', value: quoted[1]!, raw: undefined, pos }, end: column + quoted[0].length };
  }
  PLAIN.lastIndex = column;
  const m = PLAIN.exec(line.text) ?? notPlain();
  const raw = m[0];
  // `x:` is a key, and a lone `:` an indicator; neither is a scalar.
  if (raw.endsWith(':')) notPlain();
  return { node: { kind: 'scalar', value: typePlain(raw), raw, pos }, end: column + raw.length };
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
