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
export const CONFIGMAP_CONFIG_KEY = 'config';

/** One config text embedded in a ConfigMap's `data`. */
export interface EmbeddedConfig {
  /** The manifest file. */
  readonly source: string;
  readonly configMap: string;
  /** The data key, e.g. `config`. */
  readonly key: string;
  readonly text: string;
  /** Maps a 1-based line:column inside `text` to the manifest; undefined when it cannot. */
  readonly toManifest: (pos: Position) => Position | undefined;
  /** Where the data key is written in the manifest. */
  readonly keyPosition: Position;
}

/** What a manifest file holds for the agent. */
export interface ManifestConfigs {
  readonly configs: readonly EmbeddedConfig[];
  readonly issues: readonly ConfigIssue[];
  readonly warnings: readonly ConfigIssue[];
}

/** Whether a data key holds a config the agent reads: `config`, or a file name the directory loader takes. */
export function isConfigDataKey(key: string): boolean {
  return key === CONFIGMAP_CONFIG_KEY || isConfigFileName(key);
}

/**
 * Finds the ConfigMaps in a manifest text. Returns undefined when the text is not a Kubernetes
 * manifest (some document lacks `apiVersion` and `kind`), so callers read it as a plain config.
 */
export function extractManifestConfigs(text: string, source: string): ManifestConfigs | undefined {
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

  const at = (offset: number): Position => {
    const { line, col } = lineCounter.linePos(offset);
    return { line, column: col };
  };
  const configs: EmbeddedConfig[] = [];
  const issues: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];
  const configMaps = nonEmpty.filter((d) => d.get('kind') === 'ConfigMap');
  if (configMaps.length === 0) {
    issues.push({ source, path: '', message: "this Kubernetes manifest holds no ConfigMap; give the ConfigMap that carries the agent's config, or the config file itself" });
  }
  for (const doc of configMaps) {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a scalar prints as itself, a yaml collection node as its JSON
    const name = cutExcerpt(String(doc.getIn(['metadata', 'name']) ?? '(unnamed)'), 100);
    const data = doc.get('data', true);
    const docPos = doc.contents?.range ? at(doc.contents.range[0]) : {};
    if (!isMap(data)) {
      issues.push({
        source,
        path: 'data',
        ...docPos,
        message: `ConfigMap ${name} has no data; the agent would run with the defaults. Put the config under data.${CONFIGMAP_CONFIG_KEY}`,
      });
      continue;
    }
    const keys: string[] = [];
    for (const pair of data.items) {
      if (!isScalar(pair.key)) continue;
      const key = cutExcerpt(String(pair.key.value), 100);
      keys.push(key);
      const keyPosition = pair.key.range ? at(pair.key.range[0]) : docPos;
      if (!isConfigDataKey(key)) {
        warnings.push({
          source,
          path: `data.${key}`,
          ...keyPosition,
          message: `ConfigMap ${name}: data.${key} is not read by the agent (it reads data.${CONFIGMAP_CONFIG_KEY}, mounted as /etc/config/ip-masq-agent, or keys named ip-masq*)`,
        });
        continue;
      }
      const value = pair.value;
      if (!isScalar(value) || typeof value.value !== 'string') {
        issues.push({ source, path: `data.${key}`, ...keyPosition, message: `ConfigMap ${name}: data.${key} must be a string holding the config (write it as a block: "${key}: |")` });
        continue;
      }
      configs.push({ source, configMap: name, key, text: value.value, toManifest: positionMapper(value, text, lineCounter), keyPosition });
    }
    if (!keys.some(isConfigDataKey)) {
      issues.push({
        source,
        path: 'data',
        ...(data.range ? at(data.range[0]) : docPos),
        message:
          `ConfigMap ${name} has no data key "${CONFIGMAP_CONFIG_KEY}" (found: ${cutExcerpt(keys.join(', ')) || 'none'}); the DaemonSet mounts data.${CONFIGMAP_CONFIG_KEY} ` +
          'as /etc/config/ip-masq-agent, so the agent would silently run with the defaults',
      });
    }
  }
  return { configs, issues, warnings };
}

/**
 * Line:column mapping for a literal block (`config: |`): its lines are the manifest's lines
 * after the header, shifted by the block's indentation. Other styles fold or escape their text,
 * so positions inside them are not mapped.
 */
function positionMapper(node: Scalar, text: string, lineCounter: LineCounter): (pos: Position) => Position | undefined {
  if (node.type !== 'BLOCK_LITERAL' || !node.range) return () => undefined;
  const header = lineCounter.linePos(node.range[0]).line;
  const lines = text.split('\n');
  const firstContent = lines.slice(header).find((l) => l.trim() !== '');
  const indent = firstContent === undefined ? 0 : firstContent.length - firstContent.trimStart().length;
  return (pos) => (pos.line === undefined ? undefined : { line: header + pos.line, column: (pos.column ?? 1) + indent });
}

/**
 * The config fragments a manifest's ConfigMaps carry, in file order (they merge as files projected
 * into one directory do), with every issue in reading order; undefined when the text is not a manifest.
 */
export function readManifest(text: string, source: string, opts: ConfigOptions): { fragments: ConfigFragment[]; issues: ConfigIssue[]; warnings: ConfigIssue[] } | undefined {
  const manifest = extractManifestConfigs(text, source);
  if (!manifest) return undefined;
  const results = manifest.configs.map((e) => parseEmbeddedConfig(e, opts));
  return {
    fragments: results.map((r) => r.fragment),
    issues: [...manifest.issues, ...results.flatMap((r) => r.issues)].sort(byPosition),
    warnings: [...manifest.warnings, ...results.flatMap((r) => r.warnings)],
  };
}

/** Rewrites an issue found inside an embedded config so it points into the manifest. */
function relocate(issue: ConfigIssue, e: EmbeddedConfig): ConfigIssue {
  const path = issue.path ? `data.${e.key}.${issue.path}` : `data.${e.key}`;
  const mapped = e.toManifest(issue);
  if (mapped) return { source: e.source, path, ...mapped, message: issue.message };
  const inside = issue.line === undefined ? '' : ` (at ${issue.line}:${issue.column ?? 1} of the data.${e.key} text)`;
  return { source: e.source, path, ...e.keyPosition, message: `${issue.message}${inside}` };
}

/** Parses one embedded config; every position and key path points into the manifest. */
export function parseEmbeddedConfig(e: EmbeddedConfig, opts: ConfigOptions): FragmentResult {
  const r = parseConfigFragment(e.text, e.source, opts);
  // Everything a fragment holds is located (source, key path, line:column): move each value, or
  // each entry of a list, into the manifest, whatever the key.
  const move = <T extends { source: string; path: string } & Position>(v: T): T => {
    const { line: _line, column: _column, ...rest } = v;
    const { message: _message, ...at } = relocate({ ...v, message: '' }, e);
    return { ...rest, ...at } as T;
  };
  const fragment: { -readonly [K in keyof ConfigFragment]: ConfigFragment[K] } = { source: e.source };
  for (const key of CONFIG_KEYS) {
    const v = r.fragment[key];
    if (v !== undefined) fragment[key] = (Array.isArray(v) ? v.map(move) : move(v as Exclude<typeof v, readonly unknown[]>)) as never;
  }
  return { fragment, issues: r.issues.map((i) => relocate(i, e)), warnings: r.warnings.map((w) => relocate(w, e)) };
}
