// Reads the config from disk: a file (or a symlink to one, as kubelet's ConfigMap volume makes),
// or a directory of `ip-masq*` files merged in name order. The only config module that touches
// node:fs; parsing and merging are pure and live in parse.ts and merge.ts.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ConfigIssue } from '../errors.js';
import { ConfigError } from '../errors.js';
import { hashConfig, type ConfigOptions, type MasqConfig } from './config.js';
import { mergeConfigFragments } from './merge.js';
import { isEmptyFragment, parseConfigFragment, type ConfigFragment, type FragmentResult } from './parse.js';
import { readCappedText } from './read-capped.js';
import { MAX_CONFIG_BYTES } from '../limits.js';

/** The effective config and what it was built from. */
export interface LoadedConfig {
  readonly config: MasqConfig;
  readonly warnings: readonly ConfigIssue[];
  /** Files read, in merge order (an empty or comment-only file is listed too); [] when none exists. */
  readonly files: readonly string[];
  /** True when no file sets any key: missing path, no matching file, or files that are empty or only comments. */
  readonly usingDefaults: boolean;
  /** sha256 hex of the effective config (stable JSON), for change detection and metrics. */
  readonly hash: string;
}

/** Whether a directory entry is a config file: `ip-masq-agent` or any name starting with `ip-masq`. */
export function isConfigFileName(name: string): boolean {
  return !name.startsWith('.') && name.startsWith('ip-masq');
}

/** The OS reason of a failed fs call, e.g. `EACCES: permission denied, open '/etc/config/x'`. */
function reason(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const errnoOf = (err: unknown): string | undefined =>
  typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;

function readError(path: string, err: unknown): ConfigError {
  return new ConfigError([{ source: path, path: '', message: `cannot read the config: ${reason(err)}` }]);
}

/** What parseConfigFragment made of each file's text last time, so an unchanged file is not parsed again. */
export type ParseCache = Map<string, { readonly text: string; readonly result: FragmentResult }>;

/** An empty ParseCache, for one agent's loadConfig calls. */
export function createParseCache(): ParseCache {
  return new Map();
}

/**
 * Loads the config at `path`: missing → defaults; a file → that file; a directory → every
 * `ip-masq*` entry (symlinks followed, dot-names skipped) merged in name order.
 * Throws ConfigError with every issue found, including read errors with the path and OS reason.
 * With a cache, a file whose text is unchanged is not parsed again: parsing the largest file
 * allowed costs a second and a heap of about 100 MB of short-lived objects, at every resync.
 */
export async function loadConfig(path: string, opts: ConfigOptions, cache?: ParseCache): Promise<LoadedConfig> {
  let files: string[];
  const skipped: ConfigIssue[] = [];
  try {
    const info = await stat(path);
    if (info.isDirectory()) {
      const names = (await readdir(path)).filter(isConfigFileName).sort();
      files = [];
      for (const name of names) {
        const file = join(path, name);
        // kubelet's layout makes entries symlinks into ..data; stat follows them. A dangling one
        // is an error (keep the last good config), not a missing config.
        const entry = await stat(file).catch((err: unknown) => {
          throw readError(file, err);
        });
        if (entry.isFile()) files.push(file);
        else skipped.push({ source: file, path: '', message: 'skipped: not a regular file' });
      }
    } else if (info.isFile()) {
      files = [path];
    } else {
      throw new ConfigError([{ source: path, path: '', message: 'the config path is neither a regular file nor a directory' }]);
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    // A missing config is normal: the ConfigMap volume is optional.
    if (errnoOf(err) === 'ENOENT') return fromFragments([], [], [], opts);
    throw readError(path, err);
  }

  const fragments: ConfigFragment[] = [];
  const issues: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [...skipped];
  // One budget for all files together: a directory of many files is no way around the cap.
  let bytesRead = 0;
  for (const file of files) {
    let text: string;
    try {
      const read = await readCappedText(file, MAX_CONFIG_BYTES - bytesRead);
      if (!read.ok) {
        issues.push({ source: file, path: '', message: readFailure(read, path, bytesRead) });
        break;
      }
      text = read.text;
      bytesRead += read.bytes;
    } catch (err) {
      issues.push({ source: file, path: '', message: `cannot read the config: ${reason(err)}` });
      continue;
    }
    const key = `${file}\u0000${String(opts.enableIPv6)}`;
    const cached = cache?.get(key);
    const result = cached?.text === text ? cached.result : parseConfigFragment(text, file, opts);
    if (cache && cached?.result !== result) cache.set(key, { text, result });
    fragments.push(result.fragment);
    // Loops, not push(...spread): a file with very many bad entries would overflow the stack.
    for (const i of result.issues) issues.push(i);
    for (const w of result.warnings) warnings.push(w);
  }
  // Only the files of this read stay cached: renamed or removed files must not pile up.
  if (cache) for (const key of cache.keys()) if (!files.some((f) => key.startsWith(`${f}\u0000`))) cache.delete(key);
  if (issues.length > 0) throw new ConfigError(issues);
  return fromFragments(fragments, files, warnings, opts);
}

/** Why a file was not read: not a regular file, over the cap, or over what a directory's files have left. */
function readFailure(read: { reason: 'too-big'; bytes: number; grew: boolean } | { reason: 'not-a-file' }, dir: string, before: number): string {
  if (read.reason === 'not-a-file') return 'cannot read the config: not a regular file';
  const limit = `the limit is ${MAX_CONFIG_BYTES.toLocaleString('en')} bytes`;
  if (read.grew) return `config file grew past the limit while it was read; ${limit}`;
  if (read.bytes > MAX_CONFIG_BYTES) return `config file is ${read.bytes.toLocaleString('en')} bytes; ${limit}`;
  return `config file is ${read.bytes.toLocaleString('en')} bytes, and with the files before it in ${dir} ${(before + read.bytes).toLocaleString('en')} bytes; ${limit} for all files of a directory together`;
}

/** Merges what was read into a LoadedConfig. */
function fromFragments(
  fragments: readonly ConfigFragment[],
  files: readonly string[],
  warnings: readonly ConfigIssue[],
  opts: ConfigOptions,
): LoadedConfig {
  const merged = mergeConfigFragments(fragments, opts);
  return {
    config: merged.config,
    warnings: [...warnings, ...merged.warnings],
    files,
    usingDefaults: fragments.every(isEmptyFragment),
    hash: hashConfig(merged.config),
  };
}
