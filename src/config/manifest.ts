// Reads the agent's config out of a Kubernetes ConfigMap manifest (the file a GitOps repository
// or a CI step holds), so the operator commands can check what will be mounted, with line:column
// pointing into the manifest itself. Pure: no file access here.
import { LineCounter, isMap, isScalar, type Scalar } from 'yaml';
import type { ConfigIssue } from '../errors.js';
import { cutExcerpt } from '../excerpt.js';
import type { ConfigOptions, Position } from './config.js';
import { isConfigFileName } from './config.js';
import { parseConfigFragment } from './parse.js';
import { byPosition, type ConfigFragment, type FragmentResult } from './fragment.js';
import { CONFIG_KEYS } from './keys.js';
import { parseBoundedAllDocuments } from './guard.js';

/** The ConfigMap data key the reference DaemonSet mounts as /etc/config/ip-masq-agent. */
const CONFIG_DATA_KEY = 'config';

/** Whether a data key holds a config the agent reads: `config`, or a file name the directory loader takes. */
const isConfigDataKey = (key: string): boolean => key === CONFIG_DATA_KEY || isConfigFileName(key);

/**
 * The config fragments a manifest's ConfigMaps carry, in file order (they merge as files projected
 * into one directory do), located in the manifest, with every issue in reading order. Undefined
 * when the text is not a Kubernetes manifest (some document lacks `apiVersion` and `kind`), so
 * callers read it as a plain config.
 */
export function readManifest(text: string, source: string, opts: ConfigOptions): { fragments: ConfigFragment[]; issues: ConfigIssue[]; warnings: ConfigIssue[] } | undefined {
  const lineCounter = new LineCounter();
  let docs;
  try {
    const parsed = parseBoundedAllDocuments(text, { lineCounter, prettyErrors: false });
    // Too deep or too wide for a manifest: read as a plain config, whose parser says where.
    if (parsed.problem) return undefined;
    docs = parsed.docs;
  } catch {
    return undefined;
  }
  const nonEmpty = docs.filter((d) => d.contents !== null);
  const isObject = (d: (typeof docs)[number]): boolean => d.errors.length === 0 && isMap(d.contents) && typeof d.get('apiVersion') === 'string' && typeof d.get('kind') === 'string';
  if (nonEmpty.length === 0 || !nonEmpty.every(isObject)) return undefined;

  const posOf = (node: { range?: [number, number, number] | null } | null, fallback: Position = {}): Position => {
    if (!node?.range) return fallback;
    const { line, col } = lineCounter.linePos(node.range[0]);
    return { line, column: col };
  };
  const fragments: ConfigFragment[] = [];
  // One list each, in reading order; issues sorted by position at the end (load.ts sorts warnings with the merge's).
  const issues: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const issue = (path: string, pos: Position, message: string): ConfigIssue => ({ source, path, ...pos, message });
  const configMaps = nonEmpty.filter((d) => d.get('kind') === 'ConfigMap');
  if (configMaps.length === 0) {
    issues.push(issue('', {}, "this Kubernetes manifest holds no ConfigMap; give the ConfigMap that carries the agent's config, or the config file itself"));
  }
  for (const doc of configMaps) {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a scalar prints as itself, a yaml collection node as its JSON
    const name = cutExcerpt(String(doc.getIn(['metadata', 'name']) ?? '(unnamed)'), 100);
    const data = doc.get('data', true);
    const docPos = posOf(doc.contents);
    if (!isMap(data)) {
      issues.push(issue('data', docPos, `ConfigMap ${name} has no data; the agent would run with the defaults. Put the config under data.${CONFIG_DATA_KEY}`));
      continue;
    }
    const keys: string[] = [];
    for (const { key: keyNode, value } of data.items) {
      if (!isScalar(keyNode)) continue;
      const key = cutExcerpt(String(keyNode.value), 100);
      keys.push(key);
      const keyPosition = posOf(keyNode, docPos);
      if (!isConfigDataKey(key)) {
        const reads = `it reads data.${CONFIG_DATA_KEY}, mounted as /etc/config/ip-masq-agent, or keys named ip-masq*`;
        warnings.push(issue(`data.${key}`, keyPosition, `ConfigMap ${name}: data.${key} is not read by the agent (${reads})`));
      } else if (!isScalar(value) || typeof value.value !== 'string') {
        issues.push(issue(`data.${key}`, keyPosition, `ConfigMap ${name}: data.${key} must be a string holding the config (write it as a block: "${key}: |")`));
      } else {
        const r = parseEmbeddedConfig(value.value, source, key, keyPosition, blockShift(value, text, lineCounter), opts);
        fragments.push(r.fragment);
        // Loops, not push(...spread): a config with very many bad entries would overflow the stack.
        for (const i of r.issues) issues.push(i);
        for (const w of r.warnings) warnings.push(w);
      }
    }
    if (!keys.some(isConfigDataKey)) {
      const found = cutExcerpt(keys.join(', ')) || 'none';
      const mounts = `the DaemonSet mounts data.${CONFIG_DATA_KEY} as /etc/config/ip-masq-agent, so the agent would silently run with the defaults`;
      issues.push(issue('data', posOf(data, docPos), `ConfigMap ${name} has no data key "${CONFIG_DATA_KEY}" (found: ${found}); ${mounts}`));
    }
  }
  return { fragments, issues: issues.sort(byPosition), warnings };
}

/**
 * How many lines and columns down an embedded config's text sits in the manifest. A literal block
 * (`config: |`) holds the manifest's lines after its header, shifted by the block's indentation.
 * Other styles fold or escape their text, so positions inside them are not mapped (undefined).
 */
function blockShift(node: Scalar, text: string, lineCounter: LineCounter) {
  if (node.type !== 'BLOCK_LITERAL' || !node.range) return undefined;
  const header = lineCounter.linePos(node.range[0]).line;
  const lines = text.split('\n');
  const firstContent = lines.slice(header).find((l) => l.trim() !== '');
  return { lines: header, columns: firstContent === undefined ? 0 : firstContent.length - firstContent.trimStart().length };
}

type Shift = ReturnType<typeof blockShift>;

/** Parses the config at data.`key`; every position and key path points into the manifest (at the data key where the text does not map). */
function parseEmbeddedConfig(text: string, source: string, key: string, keyPosition: Position, shift: Shift, opts: ConfigOptions): FragmentResult {
  const r = parseConfigFragment(text, source, opts);
  // Everything a fragment holds is located (source, key path, line:column): move each value, each
  // entry of a list and each issue into the manifest, whatever the key (the rest of each kept as it is).
  const move = ({ line, column, ...v }: { readonly path: string } & Position) => {
    const path = v.path ? `data.${key}.${v.path}` : `data.${key}`;
    const at = line !== undefined && shift ? { line: shift.lines + line, column: (column ?? 1) + shift.columns } : keyPosition;
    return { ...v, source, path, ...at };
  };
  // Where the text does not map, an issue says where in that text it is.
  const relocate = (i: ConfigIssue): ConfigIssue => {
    const inside = i.line === undefined || shift ? '' : ` (at ${i.line}:${i.column ?? 1} of the data.${key} text)`;
    return { ...move(i), message: `${i.message}${inside}` };
  };
  const fragment: { -readonly [K in keyof ConfigFragment]: ConfigFragment[K] } = { source };
  for (const k of CONFIG_KEYS) {
    const v = r.fragment[k];
    if (v !== undefined) fragment[k] = (Array.isArray(v) ? v.map(move) : move(v as Exclude<typeof v, readonly unknown[]>)) as never;
  }
  return { fragment, issues: r.issues.map(relocate), warnings: r.warnings.map(relocate) };
}
