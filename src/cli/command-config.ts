// How the operator commands read a config: exactly as the agent does (a file, or a directory
// of ip-masq* files), plus a Kubernetes ConfigMap manifest, and with the line:column of every
// CIDR kept so messages can point at it.
import type { CidrEntry, ConfigOptions } from '../config/config.js';
import { hashConfig } from '../config/key-values.js';
import { loadConfig, type LoadedConfig } from '../config/load.js';
import { LIST_KEYS } from '../config/keys.js';
import { extractManifestConfigs, parseEmbeddedConfig } from '../config/manifest.js';
import { mergeConfigFragments } from '../config/merge.js';
import { isEmptyFragment, parseConfigFragment, type ConfigFragment, type Position } from '../config/parse.js';
import { ConfigError, type ConfigIssue } from '../errors.js';

/** Reads a regular file's text; undefined for a directory or a missing path. */
export type ReadText = (path: string) => Promise<string | undefined>;

/** A loaded config plus what the commands show about it. */
export interface CommandConfig extends LoadedConfig {
  /** The path asked for. */
  readonly path: string;
  /** True when the path is a Kubernetes manifest whose ConfigMap(s) carry the config. */
  readonly manifest: boolean;
  /** line:column of each CIDR entry, by `source` and key `path`. */
  readonly positions: ReadonlyMap<string, Position>;
}

const positionKey = (source: string, path: string): string => `${source}\u0000${path}`;

/** Where a CIDR entry (or anything with source and key path) was written, if known. */
export function positionOf(cfg: CommandConfig, entry: { readonly source: string; readonly path: string }): Position {
  return cfg.positions.get(positionKey(entry.source, entry.path)) ?? {};
}

/** `file:line:col` (or just the source when the position is unknown). */
export function formatWhere(source: string, pos: Position): string {
  return pos.line === undefined ? source : `${source}:${pos.line}:${pos.column ?? 1}`;
}

function recordPositions(fragments: readonly ConfigFragment[]): Map<string, Position> {
  const positions = new Map<string, Position>();
  for (const f of fragments) {
    for (const key of LIST_KEYS) {
      for (const e of f[key] ?? []) {
        if (e.line !== undefined) positions.set(positionKey(e.source, e.path), { line: e.line, ...(e.column === undefined ? {} : { column: e.column }) });
      }
    }
  }
  return positions;
}

/**
 * Loads the config at `path` for a command. Throws ConfigError with every issue, as the agent's
 * loader does; a manifest's issues point into the manifest.
 */
export async function loadCommandConfig(path: string, opts: ConfigOptions, readText: ReadText): Promise<CommandConfig> {
  const text = await readText(path);
  const manifest = text === undefined ? undefined : extractManifestConfigs(text, path);
  if (manifest) {
    const results = manifest.configs.map((e) => parseEmbeddedConfig(e, opts));
    const issues: ConfigIssue[] = [...manifest.issues, ...results.flatMap((r) => r.issues)];
    if (issues.length > 0) throw new ConfigError(sortIssues(issues));
    const fragments = results.map((r) => r.fragment);
    // Several ConfigMaps in one file merge in file order, as files projected into one directory do.
    const merged = mergeConfigFragments(fragments, opts);
    return {
      path,
      manifest: true,
      config: merged.config,
      warnings: sortIssues([...manifest.warnings, ...results.flatMap((r) => r.warnings), ...merged.warnings]),
      files: [path],
      usingDefaults: fragments.every(isEmptyFragment),
      hash: hashConfig(merged.config),
      positions: recordPositions(fragments),
    };
  }
  const loaded = await loadConfig(path, opts);
  const fragments: ConfigFragment[] = [];
  for (const file of loaded.files) {
    const fileText = file === path ? text : await readText(file);
    if (fileText !== undefined) fragments.push(parseConfigFragment(fileText, file, opts).fragment);
  }
  return { ...loaded, path, manifest: false, positions: recordPositions(fragments) };
}

function sortIssues(issues: readonly ConfigIssue[]): ConfigIssue[] {
  return [...issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
}

/** A one-line description of where a CIDR entry came from, for people. */
export function describeEntryOrigin(cfg: CommandConfig, entry: CidrEntry): string {
  if (entry.source === 'defaults') return `the default list (${entry.path}; no config file sets nonMasqueradeCIDRs)`;
  return `${formatWhere(entry.source, positionOf(cfg, entry))} ${entry.path}`;
}
