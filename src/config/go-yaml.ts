// Composed YAML read to values as go-yaml v2 (the reader behind the reference agent's
// k8s.io/apimachinery util/yaml, gopkg.in/yaml.v2 v2.4.0) decodes it, where that differs from the
// yaml library's YAML 1.1:
// - A merge key (plain `<<`, or `!!merge <<`) takes a mapping, an alias of one, or a list of those
//   (not an alias of a list), and copies their keys in where it stands: the keys are set in
//   document order and a later one replaces an earlier one, so a merge replaces keys written
//   before it (YAML's merge spec, which the library follows, keeps them), and in a list of
//   mappings the first one wins. Anything else is refused, as v2 refuses it.
// - `1:30` is the string "1:30": v2 has no base-60 numbers (resolve.go: "purposefully
//   unsupported"), where YAML 1.1 reads 90.
// - `0o17`, `0O17`, `0X1F` and `0B11` are integers: v2 reads an integer with Go's
//   strconv.ParseInt(s, 0, 64), which takes Go's prefixes in either case; YAML 1.1 knows only
//   `017`, `0x1F` and `0b11`, and reads the others as strings.
// Pure.
import { isAlias, isMap, isNode, isScalar, isSeq, type Document, type Node, type ScalarTag, type Tags, type YAMLMap } from 'yaml';
import type { Position } from './config.js';
import { ValueError } from './fragment.js';
import type { PlainNode } from './plain-yaml.js';

const RADIX: Readonly<Record<string, number>> = { o: 8, O: 8, X: 16, B: 2 };

/** The integers Go's prefixes write that YAML 1.1 does not read (`_` dropped first, as v2 drops it). */
const goPrefixedInt: ScalarTag = {
  identify: (value) => Number.isInteger(value),
  default: true,
  tag: 'tag:yaml.org,2002:int',
  format: 'GO',
  test: /^[-+]?0(?:[oO]_*[0-7][0-7_]*|X_*[0-9a-fA-F][0-9a-fA-F_]*|B_*[01][01_]*)$/,
  resolve: (text) => {
    const digits = text.replace(/_/g, '');
    const unsigned = digits.replace(/^[-+]/, '');
    const n = parseInt(unsigned.slice(2), RADIX[unsigned[1]!]);
    return digits.startsWith('-') ? -n : n;
  },
};

/**
 * The yaml library's YAML 1.1 tags as go-yaml v2 resolves plain scalars: without base-60 integers
 * and floats (the only tags with format TIME), so `1:30` stays a string, and with Go's `0o`, `0O`,
 * `0X` and `0B` integers.
 */
export const goYamlTags = (tags: Tags): Tags => [...tags.filter((tag) => typeof tag === 'string' || !('format' in tag && tag.format === 'TIME')), goPrefixedInt];

/** One key of a mapping and its value, merges applied. */
export interface GoPair {
  readonly keyNode: unknown;
  readonly valueNode: Node | null;
}

/** Whether a key is a merge key: the library composes a plain `<<` (and `!!merge <<`) to a symbol. */
const isMergeKey = (key: unknown): boolean => isScalar(key) && typeof key.value === 'symbol';

/** The key's text as a JavaScript object holds it. */
export const keyText = (key: unknown): string => (isScalar(key) ? (typeof key.value === 'symbol' ? '<<' : String(key.value)) : String(key));

/** What the merge value is, for the message. */
function describeNode(node: unknown): string {
  if (isSeq(node)) return 'a list';
  if (isMap(node)) return 'a mapping';
  if (isScalar(node)) return node.value === null ? 'null (no value)' : `a ${typeof node.value}`;
  return 'nothing';
}

/**
 * The keys of a mapping as go-yaml v2 decodes them: merges applied where they stand, a later key
 * replacing an earlier one (it keeps the earlier one's place in the order; a Go map has none).
 * `onReplace` hears of each key written in `map` itself that a later merge replaces (go-yaml v2
 * lets the merge, whose value is `mergeNode`, win). Throws ValueError (located by `at`) for a merge
 * value v2 refuses.
 */
export function goMapPairs(map: YAMLMap, doc: Document, at: (node: unknown) => Position, onReplace?: (keyNode: unknown, mergeNode: Node | null) => void): GoPair[] {
  const pairs = new Map<unknown, GoPair>();
  // The merge of `map` being applied, if any: keys written in `map` itself are the ones a merge may surprise by replacing.
  let outerMerge: { node: Node | null } | undefined;
  const written = new Set<unknown>();
  const refuse = (node: Node | null, got: unknown): never => {
    throw new ValueError(
      `the merge key "<<" needs a mapping, an alias of one, or a list of those; got ${describeNode(got)} (the reference agent's YAML reader refuses it too: "map merge requires map or sequence of maps as the value")`,
      at(node),
    );
  };
  // No merge copies a mapping that holds it: guard.ts refused any alias inside what it names.
  const add = (m: YAMLMap): void => {
    for (const pair of m.items) {
      const valueNode = isNode(pair.value) ? pair.value : null;
      if (isMergeKey(pair.key)) {
        const outer = outerMerge === undefined;
        if (outer) outerMerge = { node: valueNode };
        merge(valueNode);
        if (outer) outerMerge = undefined;
        continue;
      }
      const identity = isScalar(pair.key) ? pair.key.value : pair.key;
      const earlier = pairs.get(identity);
      if (earlier !== undefined && outerMerge !== undefined && written.has(earlier.keyNode)) onReplace?.(earlier.keyNode, outerMerge.node);
      if (outerMerge === undefined) written.add(pair.key);
      pairs.set(identity, { keyNode: pair.key, valueNode });
    }
  };
  const merge = (value: Node | null): void => {
    // A list backwards, as v2 does: the first mapping of the list wins.
    const sources = isSeq(value) ? value.items.map((item) => (isNode(item) ? item : null)).reverse() : [value];
    for (const node of sources) {
      const target = isAlias(node) ? node.resolve(doc) : node;
      add(isMap(target) ? target : refuse(node, target));
    }
  };
  add(map);
  return [...pairs.values()];
}

/** A mapping or list with no tag of its own (a `!!set`, `!!omap` or custom tag keeps the library's reading). */
const isPlainCollection = (node: Node): boolean => node.tag === undefined || node.tag === 'tag:yaml.org,2002:map' || node.tag === 'tag:yaml.org,2002:seq';

/**
 * A node read as go-yaml v2 reads it (merges applied) into the plain readers' nodes, each part
 * with where it starts (`at`) and a number with its text as written (`text`), so that messages
 * locate and quote it as they do for a text the plain readers read. An alias stands where it is
 * written, for what its anchor holds. Throws ValueError for a merge v2 refuses, or the library's
 * error for an unresolved or excessive alias.
 */
export function toPlainNode(node: unknown, doc: Document, at: (node: unknown) => Position, text: string): PlainNode {
  const pos = at(node);
  if (isAlias(node)) {
    const target = node.resolve(doc);
    if (target === undefined) throw new ReferenceError(`unresolved alias *${node.source} (the anchor must be set before the alias)`);
    const read = toPlainNode(target, doc, at, text);
    return read.kind === 'scalar' ? { ...read, pos, raw: undefined } : { ...read, pos };
  }
  if (isMap(node) || isSeq(node)) {
    // A tagged collection keeps the library's value; its parts are still located, when v2 could read them.
    const tagged = isPlainCollection(node) ? {} : { tagged: node.toJS(doc, { maxAliasCount: 100 }) as unknown };
    try {
      if (isSeq(node)) return { kind: 'list', items: node.items.map((item) => toPlainNode(item, doc, at, text)), pos, ...tagged };
      const pairs = goMapPairs(node, doc, at).map((p) => ({ key: keyText(p.keyNode), keyPos: at(p.keyNode), value: toPlainNode(p.valueNode, doc, at, text) }));
      return { kind: 'map', pairs, pos, ...tagged };
    } catch (err) {
      if ('tagged' in tagged) return { kind: 'scalar', value: tagged.tagged, raw: undefined, pos };
      throw err;
    }
  }
  // A plain `<<` that is not a key is the string "<<" to v2.
  if (isScalar(node) && typeof node.value === 'symbol') return { kind: 'scalar', value: '<<', raw: undefined, pos };
  const raw = isScalar(node) && typeof node.value === 'number' && node.range ? text.slice(node.range[0], node.range[1]).trim() : undefined;
  return { kind: 'scalar', value: isNode(node) ? node.toJS(doc, { maxAliasCount: 100 }) : null, raw, pos };
}
