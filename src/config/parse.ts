// Reads one config text (YAML 1.1 or JSON, as the reference agent reads it through Kubernetes'
// YAML reader, go-yaml v2, whose line breaks, merge keys and numbers line-breaks.ts and go-yaml.ts
// follow) into a ConfigFragment: the keys it sets, each traced to file, line:column and key
// path. Every problem is collected, not just the first. Pure: no file access. The agent's loader
// reads a plain text without this module (and the yaml library): plain-yaml.ts and fragment.ts;
// here the library reads any text into the same nodes.
import { LineCounter, isMap, isNode, isScalar, type YAMLError } from 'yaml';
import type { ConfigIssue } from '../errors.js';
import { ConfigError } from '../errors.js';
import { cutExcerpt, quoteExcerpt } from '../excerpt.js';
import type { ConfigOptions, Position } from './config.js';
import { mergeConfigFragments } from './merge.js';
import { CONFIG_KEYS } from './keys.js';
import { parseBoundedDocument } from './guard.js';
import { byPosition, readEntries, readPlainFragment, ValueError, type ConfigFragment, type FragmentResult, type TopEntry } from './fragment.js';
import { goMapPairs, goYamlTags, keyText, toPlainNode, type GoPair } from './go-yaml.js';
import { toLineFeeds } from './line-breaks.js';
import { describeValue } from './structure.js';

/** The key written at `offset` (quoted or plain), for messages. */
function keyTextAt(text: string, offset: number): string {
  const m = /^("(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^:\n]*)/.exec(text.slice(offset));
  const raw = (m?.[1] ?? '').trim();
  return /^["']/.test(raw) ? raw.slice(1, -1) : raw;
}

/** A message for a YAML syntax error, with a hint where a common mistake is behind it. */
function yamlErrorMessage(err: YAMLError, text: string): string {
  switch (err.code) {
    case 'DUPLICATE_KEY':
      return `duplicate key ${quoteExcerpt(keyTextAt(text, err.pos[0]))}: a key may appear only once`;
    case 'MULTIPLE_DOCS':
      return 'the file holds more than one YAML document (a second "---"); put every key in one document';
    case 'BLOCK_IN_FLOW':
      return `${cutExcerpt(err.message)} (a lone "-" inside [...] is not a list item; write [] for an empty list)`;
    default:
      return cutExcerpt(err.message);
  }
}

/**
 * Reads one config text into the keys it sets. Never throws for bad input: problems come back
 * as issues (errors) and warnings, each with source, line:column and key path.
 */
export function parseConfigFragment(text: string, source: string, opts: ConfigOptions): FragmentResult {
  return readPlainFragment(text, source, opts) ?? parseFragmentWithYaml(text, source, opts);
}

/** Reads one config text with the yaml library: any YAML, every problem located. */
export function parseFragmentWithYaml(written: string, source: string, opts: ConfigOptions): FragmentResult {
  const issues: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const fragment: ConfigFragment = { source };
  const lineFeeds = toLineFeeds(written);
  if (lineFeeds.problem) {
    const lines = written.slice(0, lineFeeds.problem.offset).split(/\r\n|\r|\n/);
    return { fragment, issues: [{ source, path: '', line: lines.length, column: lines[lines.length - 1]!.length + 1, message: lineFeeds.problem.message }], warnings };
  }
  // Every break go-yaml v2 knows is LF now, at the same offset: positions still point into the text as written.
  const text = lineFeeds.text;
  const lineCounter = new LineCounter();
  // YAML 1.1 as Kubernetes reads it (go-yaml v2): `yes`/`on` are booleans, `1:30` is a string. Merge keys are applied by go-yaml.ts.
  const parsed = parseBoundedDocument(text, { version: '1.1', customTags: goYamlTags, lineCounter, prettyErrors: false });

  const at = (offset: number | undefined): Position => {
    if (offset === undefined) return {};
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const nodeAt = (node: unknown): Position => (isNode(node) && node.range ? at(node.range[0]) : {});
  const issue = (path: string, pos: Position, message: string): ConfigIssue => ({ source, path, ...pos, message });
  if (parsed.problem) return { fragment, issues: [issue('', at(parsed.problem.offset), parsed.problem.message)], warnings };
  const doc = parsed.doc;

  for (const err of doc.errors) issues.push(issue('', at(err.pos[0]), yamlErrorMessage(err, text)));
  for (const w of doc.warnings) warnings.push(issue('', at(w.pos[0]), cutExcerpt(w.message)));
  if (issues.length > 0) return { fragment, issues, warnings };

  const contents = doc.contents;
  // Empty text, comments only, or `null`/`~`: nothing set, so every key takes its default.
  if (contents === null || (isScalar(contents) && contents.value === null)) return { fragment, issues, warnings };
  if (!isMap(contents)) {
    let value: unknown;
    try {
      value = contents.toJS(doc, { maxAliasCount: 100 });
    } catch {
      value = undefined;
    }
    // Never quote it: the path may be a symlink to any file on the node (a key, the environment).
    const size = typeof value === 'string' ? `a string of ${Buffer.byteLength(value, 'utf8')} bytes` : undefined;
    const got = size ? `${size} (its text is not shown: the path may point at a file that is not a config)` : describeValue(value);
    issues.push(issue('', nodeAt(contents), `the config must be a mapping of keys (${CONFIG_KEYS.join(', ')}), got ${got}`));
    return { fragment, issues, warnings };
  }

  let pairs: GoPair[];
  try {
    pairs = goMapPairs(contents, doc, nodeAt, (keyNode, mergeNode) => {
      const mergeAt = nodeAt(mergeNode);
      const key = keyText(keyNode);
      warnings.push(
        issue(
          cutExcerpt(key),
          nodeAt(keyNode),
          `${quoteExcerpt(key)} is replaced by the merge key "<<" after it (line ${mergeAt.line ?? '?'}): the reference agent's YAML reader (go-yaml v2) lets a later merge win, so this agent does too; write the key after "<<" to keep it`,
        ),
      );
    });
  } catch (err) {
    if (!(err instanceof ValueError)) throw err;
    return { fragment, issues: [issue('', err.pos, err.message)], warnings };
  }
  const entries = pairs.map(({ keyNode, valueNode }): TopEntry => {
    const keyPos = nodeAt(keyNode);
    const plainKey = isScalar(keyNode) && keyNode.value !== null && typeof keyNode.value !== 'object';
    // A missing value (`key:` and nothing, or null) has no useful range of its own: point at the key.
    const valuePos = (isScalar(valueNode) && valueNode.value === null) || nodeAt(valueNode).line === undefined ? keyPos : nodeAt(valueNode);
    return {
      key: plainKey ? String(keyNode.value) : undefined,
      keyPos,
      // Converted only when read: a key that is refused never builds its value.
      get value() {
        try {
          return { ...toPlainNode(valueNode, doc, nodeAt, text), pos: valuePos };
        } catch (err) {
          // A merge go-yaml v2 refuses is located at the merge value; anything else at the value.
          if (err instanceof ValueError) throw err.pos.line === undefined ? new ValueError(err.message, valuePos) : err;
          throw new ValueError(`cannot read this value: ${cutExcerpt(err instanceof Error ? err.message : String(err))}`, valuePos);
        }
      },
    };
  });
  const result = readEntries(entries, source, opts);
  return { fragment: result.fragment, issues: result.issues, warnings: [...warnings, ...result.warnings].sort(byPosition) };
}

/**
 * Reads one config text into the effective config (defaults for keys left out) and the warnings
 * met. Throws ConfigError carrying every issue found.
 */
export function parseConfigText(text: string, source: string, opts: ConfigOptions) {
  const result = parseConfigFragment(text, source, opts);
  if (result.issues.length > 0) throw new ConfigError(result.issues);
  const merged = mergeConfigFragments([result.fragment], opts);
  return { config: merged.config, warnings: [...result.warnings, ...merged.warnings] };
}
