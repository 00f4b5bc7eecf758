// The one guard every YAML reading of a config or manifest passes before any value is built:
// the number of values, then nesting and mapping width, then what aliases expand to. The yaml
// library keeps its whole syntax tree in memory while it builds a document, about 0.7 KB per
// flow-list item, so 1 MiB of `[1,1,1,...]` would take 440 MB before any check could run: the
// values are counted first, by the lexer, in constant memory. The library composes nodes and
// converts them to values by recursion; a 6 KB file of `[[[[...` overflows the stack there, and
// V8 does not always survive that (it can abort while compiling a regular expression deep in the
// stack). Its CST parser keeps its own stack, so the CST is walked here, iteratively, and a
// too-deep document is never composed. Aliases can rebuild depth and width after that check (a
// chain of anchors, "billion laughs"), so the composed tree is measured too, with aliases
// followed, before anything calls toJS. (The plain reader, plain-yaml.ts, bounds itself: it
// leaves any text beyond its small subset to this path.) Pure.
import { CST, Composer, Lexer, Parser, isAlias, isMap, isPair, isScalar, isSeq, type Document, type DocumentOptions, type LineCounter, type Node, type ParseOptions, type SchemaOptions } from 'yaml';
import { YAMLParseError } from 'yaml';
import { MAX_CONFIG_MAP_KEYS, MAX_CONFIG_NODES } from '../limits.js';

/** Deepest nesting of lists and mappings a config may have (its real depth is 3). */
export const MAX_CONFIG_NESTING = 16;

/** Most values aliases may add to a config when expanded (its keys never need aliases at all). */
export const MAX_ALIAS_EXPANSION = 1000;

/** A limit the input broke: where (offset into the text; none for the count of values) and what. */
export interface YamlLimitProblem {
  readonly offset?: number;
  readonly message: string;
}

type Options = ParseOptions & DocumentOptions & SchemaOptions & { readonly lineCounter?: LineCounter };

const isCstCollection = (t: CST.Token): t is CST.BlockMap | CST.BlockSequence | CST.FlowCollection => t.type === 'block-map' || t.type === 'block-seq' || t.type === 'flow-collection';

/** Bounds on the shape of a config text. */
const CONFIG_LIMITS = { maxNesting: MAX_CONFIG_NESTING, maxMapKeys: MAX_CONFIG_MAP_KEYS };

/** Bounds for a manifest text: other objects may sit beside the ConfigMap, whose data may carry many files. */
const MANIFEST_LIMITS: typeof CONFIG_LIMITS = { maxNesting: 64, maxMapKeys: 5000 };

/** The first collection (in text order) nested too deep or too wide, walking with an explicit stack. */
function findShapeProblem(tokens: readonly CST.Token[], limits: typeof CONFIG_LIMITS): YamlLimitProblem | undefined {
  const max = limits.maxNesting;
  const stack = tokens.map((token) => ({ token, depth: 0 })).reverse();
  while (stack.length > 0) {
    const { token, depth } = stack.pop()!;
    if (token.type === 'document') {
      if (token.value) stack.push({ token: token.value, depth });
      continue;
    }
    if (!isCstCollection(token)) continue;
    const inner = depth + 1;
    if (inner > max) {
      return { offset: token.offset, message: `lists and mappings nest more than ${max} levels deep here; a config nests at most 3` };
    }
    const isMapping = token.type === 'block-map' || (token.type === 'flow-collection' && token.start.source === '{');
    if (isMapping && token.items.length > limits.maxMapKeys) {
      return { offset: token.offset, message: `this mapping has ${token.items.length} keys, more than the ${limits.maxMapKeys} allowed here` };
    }
    for (let j = token.items.length - 1; j >= 0; j--) {
      const item = token.items[j]!;
      if (item.value) stack.push({ token: item.value, depth: inner });
      if (item.key) stack.push({ token: item.key, depth: inner });
    }
  }
  return undefined;
}

/**
 * Measures the composed tree with aliases expanded: depth and the number of values aliases add.
 * Iterative, memoised per node, so a billion laughs costs as much as its text.
 */
function findAliasExcess(doc: Document, maxNesting: number, maxExpansion: number): YamlLimitProblem | undefined {
  if (!doc.contents) return undefined;
  // Which node each alias means: the last anchor of that name before it, in document order.
  const target = new Map<Node, Node | undefined>();
  const anchors = new Map<string, Node>();
  const children = (n: unknown): unknown[] => {
    if (isMap(n) || isSeq(n)) return n.items as unknown[];
    if (isPair(n)) return [n.key, n.value];
    return [];
  };
  // Pre-order, as the library resolves anchors: a node, then its children, then its later siblings.
  const pending: unknown[] = [doc.contents];
  while (pending.length > 0) {
    const n = pending.pop();
    if (isAlias(n)) {
      target.set(n, anchors.get(n.source));
      continue;
    }
    if ((isScalar(n) || isMap(n) || isSeq(n)) && n.anchor) anchors.set(n.anchor, n);
    const c = children(n);
    for (let j = c.length - 1; j >= 0; j--) pending.push(c[j]);
  }
  if (target.size === 0) return undefined;

  // Post-order over the tree with aliases as edges to their targets; depth counts collections.
  const depth = new Map<unknown, number>();
  const size = new Map<unknown, number>();
  const onPath = new Set<unknown>();
  const offsetOf = (n: unknown): number => ((isAlias(n) || isScalar(n) || isMap(n) || isSeq(n)) && n.range ? n.range[0] : 0);
  let added = 0;
  const stack: { node: unknown; entered: boolean }[] = [{ node: doc.contents, entered: false }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const n = top.node;
    const next = isAlias(n) ? (target.has(n) ? [target.get(n)] : []) : children(n);
    if (!top.entered) {
      if (depth.has(n)) {
        stack.pop();
        continue;
      }
      if (onPath.has(n)) return { offset: offsetOf(n), message: 'an alias refers to the value that contains it' };
      top.entered = true;
      onPath.add(n);
      for (const c of next) if (c !== undefined && c !== null && !depth.has(c)) stack.push({ node: c, entered: false });
      continue;
    }
    stack.pop();
    onPath.delete(n);
    let d = 0;
    let s = 1;
    for (const c of next) {
      d = Math.max(d, depth.get(c) ?? 0);
      s += size.get(c) ?? 0;
    }
    if (isMap(n) || isSeq(n)) d++;
    if (isAlias(n)) {
      s = size.get(next[0]) ?? 0;
      added += s;
      if (added > maxExpansion) {
        return { offset: offsetOf(n), message: `aliases expand to more than ${maxExpansion} values; write the values out instead of aliasing them` };
      }
    }
    if (d > maxNesting) {
      return { offset: offsetOf(n), message: `through aliases, lists and mappings nest more than ${maxNesting} levels deep here; a config nests at most 3` };
    }
    depth.set(n, d);
    size.set(n, Math.min(s, Number.MAX_SAFE_INTEGER));
  }
  return undefined;
}

/** Counts the values, then parses the CST, stopping at the nesting bound; composes only what passed both. */
function compose(text: string, options: Options, limits: typeof CONFIG_LIMITS): { docs: Document[]; problem?: YamlLimitProblem } {
  if (countYamlNodes(text, MAX_CONFIG_NODES) > MAX_CONFIG_NODES) {
    const max = MAX_CONFIG_NODES.toLocaleString('en');
    return { docs: [], problem: { message: `the config holds more than ${max} values (list items, keys and scalars); the limit is ${max}, room for the largest CIDR cap` } };
  }
  const tokens = Array.from(new Parser(options.lineCounter?.addNewLine).parse(text));
  const problem = findShapeProblem(tokens, limits);
  if (problem) return { docs: [], problem };
  const { lineCounter: _lineCounter, ...composeOptions } = options;
  return { docs: Array.from(new Composer(composeOptions).compose(tokens, true, text.length)) };
}

/**
 * parseDocument with bounds: one document (a second is a MULTIPLE_DOCS error, as parseDocument
 * reports it), at most MAX_CONFIG_NODES values, the shape within CONFIG_LIMITS, aliases expanding to at most MAX_ALIAS_EXPANSION values
 * and never deeper than the nesting bound. A broken bound comes back as `problem`, with no document.
 */
export function parseBoundedDocument(text: string, options: Options): { doc: Document; problem?: undefined } | { doc?: undefined; problem: YamlLimitProblem } {
  const { docs, problem } = compose(text, options, CONFIG_LIMITS);
  if (problem) return { problem };
  // With forceDoc, the Composer yields a document even for an empty text.
  const [doc, second] = docs as [Document, Document?];
  if (second) {
    doc.errors.push(new YAMLParseError([second.range?.[0] ?? 0, second.range?.[1] ?? 0], 'MULTIPLE_DOCS', 'Source contains multiple documents; please use YAML.parseAllDocuments()'));
  }
  const excess = findAliasExcess(doc, MAX_CONFIG_NESTING, MAX_ALIAS_EXPANSION);
  return excess ? { problem: excess } : { doc };
}

/** parseAllDocuments with the same count and the shape bounds (for manifests, whose values are read without expanding aliases). */
export function parseBoundedAllDocuments(text: string, options: Options): { docs: Document[]; problem?: YamlLimitProblem } {
  const { docs, problem } = compose(text, options, MANIFEST_LIMITS);
  // parseAllDocuments yields no document for an empty stream; the forced one holds only comments.
  return problem ? { docs, problem } : { docs: docs.filter((d) => d.contents !== null || d.errors.length > 0) };
}

/** Token types that each start one node. */
const NODE_TOKENS: ReadonlySet<string> = new Set(['scalar', 'single-quoted-scalar', 'double-quoted-scalar', 'block-scalar-header', 'alias', 'flow-map-start', 'flow-seq-start']);

/** Tokens between an indicator and the value it introduces. */
const GAP_TOKENS: ReadonlySet<string> = new Set(['space', 'newline', 'comment', 'anchor', 'tag']);

/**
 * How many nodes the text holds, counting up to `stopAfter` (then it returns `stopAfter` + 1).
 * An empty list item (`-` with nothing after it) is a node too: `-\n-\n-\n...` is as costly as
 * `[a,a,a]`. Values of mappings are counted by their tokens; keys are scalars.
 */
export function countYamlNodes(text: string, stopAfter: number): number {
  let nodes = 0;
  let itemOpen = false;
  for (const token of new Lexer().lex(text)) {
    const type = CST.tokenType(token);
    if (!type || GAP_TOKENS.has(type)) continue;
    if (NODE_TOKENS.has(type)) {
      nodes++;
      itemOpen = false;
    } else {
      if (itemOpen) nodes++;
      itemOpen = type === 'seq-item-ind';
    }
    if (nodes > stopAfter) return stopAfter + 1;
  }
  return itemOpen ? nodes + 1 : nodes;
}
