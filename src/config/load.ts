// Reads the config from disk: with read-text.ts, the only config modules that touch node:fs.
// Only a path that does not exist means "defaults". Anything else that cannot be read as a
// config (a dangling symlink, a FIFO, a socket, a device, a directory where a file was) is an
// error, so the agent keeps the last good config instead of silently switching to the defaults.
import type { Stats } from 'node:fs';
import { readdirSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { ConfigIssue } from '../errors.js';
import { ConfigError } from '../errors.js';
import { isConfigFileName, type ConfigOptions, type MasqConfig } from './config.js';
import { hashConfig } from './key-values.js';
import { mergeConfigFragments, type EntryPositions } from './merge.js';
import { byPosition, isEmptyFragment, readPlainFragment, type ConfigFragment, type FragmentResult } from './fragment.js';
import { MAX_CONFIG_BYTES, MAX_CONFIG_FILES } from '../limits.js';
import { describeFileType, readRegularFile, type RegularFileRead } from './read-text.js';
import { KUBELET_PUBLISHED, SETTLE_MAX_WAIT_MS, SETTLE_QUIET_MS, settleWaitMs, type SeenLooks } from './settle.js';

// The watcher tells config files apart as this loader does.
export { isConfigFileName } from './config.js';

/**
 * How the config path is read: `file` (a file, or a link to one) or `directory` (its `ip-masq*`
 * files merged). The agent decides once, from what the path is when it starts, so a directory
 * appearing where the file was is an error rather than a different way of reading the config.
 */
export type ConfigPathMode = 'file' | 'directory';

/** The effective config and what it was built from. */
export interface LoadedConfig {
  readonly config: MasqConfig;
  readonly warnings: readonly ConfigIssue[];
  /** Files read, in merge order (a comment-only file is listed too); [] when none exists. */
  readonly files: readonly string[];
  /** True when no file sets any key: missing path, no matching file, or files of only comments (or `{}`). */
  readonly usingDefaults: boolean;
  /** sha256 hex of the effective config (stable JSON), for change detection and metrics. */
  readonly hash: string;
  /** Where each CIDR entry was written, for the operator commands' messages (the agent never asks); loadConfig always sets it. */
  readonly positions?: EntryPositions;
}

/** An issue about a whole file or path. */
const fileIssue = (source: string, message: string): ConfigIssue => ({ source, path: '', message });

/** A failed fs call, with its OS reason, e.g. `EACCES: permission denied, open '/etc/config/x'`. */
const readIssue = (path: string, err: unknown): ConfigIssue => fileIssue(path, `cannot read the config: ${err instanceof Error ? err.message : String(err)}`);

/** What an fs call on `path` returns; its failure as a ConfigError with the path and the OS reason. */
function readingPath<T>(path: string, call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw new ConfigError([readIssue(path, err)]);
  }
}

const pathError = (path: string, message: string): ConfigError => new ConfigError([fileIssue(path, message)]);

/** The mode `path` calls for now: `directory` when it is one (links followed), else `file`. */
export function detectConfigMode(path: string): ConfigPathMode {
  try {
    return statSync(path).isDirectory() ? 'directory' : 'file';
  } catch {
    return 'file';
  }
}

/**
 * What `path` is, links followed: undefined when nothing is there. A link whose target is missing
 * (kubelet's `config -> ..data/config` during a broken swap) is an error, not a missing config.
 */
function statConfigPath(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ConfigError([readIssue(path, err)]);
  }
  let target;
  try {
    target = readlinkSync(path);
  } catch {
    // Not a link (or one gone meanwhile): nothing is there, which is normal (the ConfigMap volume is optional).
    return undefined;
  }
  throw pathError(path, `the config path is a symbolic link to ${JSON.stringify(target)}, which does not exist (a dangling link: a ConfigMap update in progress or broken)`);
}

/**
 * What each file's text parsed to last time (checked by a hash of the text and the option parsing
 * reads), and the last LoadedConfig: an unchanged config costs one read and one hash per file, no
 * parse, merge or config hash, and is the same LoadedConfig object as last time.
 */
export class ParseCache extends Map<string, { readonly hash: string; readonly result: FragmentResult }> {
  /** The last successful load: what it was made from (files, their hashes, options) and its result. */
  last: { readonly key: string; readonly loaded: LoadedConfig } | undefined;
  /** The settle looks of the files last read, so a file dated in the future is waited for once, not at every resync. */
  readonly looks: SeenLooks = new Map();
}

/** How the agent waits for config files being written to settle (settle.ts); tests pass a clock they drive. */
export interface SettleOptions {
  readonly clock: { now(): number; setTimer(ms: number, fn: () => void): () => void };
}

/**
 * Loads the config at `path`: missing → defaults; a file → that file; a directory → every
 * `ip-masq*` entry (symlinks followed, dot-names skipped) merged in name order. `mode` (the agent
 * passes the one it started with) makes a path that is not of that kind an error; without it the
 * path's kind decides. Throws ConfigError with every issue found. With a cache (the agent), an
 * unchanged file is not parsed again: the largest file allowed costs a second and about 100 MB of
 * short-lived heap. With `settle` (the agent), a file changed less than the quiet time ago is read
 * once it has settled, never half-written. With `manifests` (the commands), a Kubernetes manifest
 * is read for the config its ConfigMap(s) carry, located in the manifest.
 */
export async function loadConfig(path: string, opts: ConfigOptions, mode?: ConfigPathMode, cache?: ParseCache, settle?: SettleOptions, manifests = false): Promise<LoadedConfig> {
  const seen: SeenLooks = cache?.looks ?? (new Map() as SeenLooks);
  const started = settle?.clock.now() ?? 0;
  for (;;) {
    const read = readConfigPath(path, mode);
    if (read === undefined) return fromFragments([], [], [], opts);
    if (settle) {
      const now = settle.clock.now();
      const waits = read.texts.map((t) => ({ file: t.file, ms: settleWaitMs(t.file, t.look, now, seen) }));
      const unsettled = waits.filter((w) => w.ms > 0 && !isPublishedByKubelet(w.file));
      if (unsettled.length > 0) {
        const wait = Math.max(...unsettled.map((w) => w.ms));
        // Bounded: a writer that never stops must not hold the sync (and the healing of the rules in force) for ever.
        if (now + wait - started > SETTLE_MAX_WAIT_MS) throw stillWritten(unsettled.map((w) => w.file));
        await new Promise<void>((resolve) => settle.clock.setTimer(wait, resolve));
        continue;
      }
    }
    return parseConfigFiles(read, opts, cache, manifests ? path : undefined);
  }
}

/** Reads the files at `path`, skipping with a warning the entries that are not files; undefined when nothing is there. */
function readConfigPath(path: string, mode: ConfigPathMode | undefined): FilesRead | undefined {
  const info = statConfigPath(path);
  if (info === undefined) return undefined;
  const wanted = mode ?? (info.isDirectory() ? 'directory' : 'file');
  if (wanted === 'file') {
    if (info.isFile()) return { ...readConfigFiles([path], path), skipped: [] };
    const hint = info.isDirectory() && mode === 'file' ? ' (it was not a directory when the agent started; restart the agent to read a directory of ip-masq* files)' : '';
    throw pathError(path, `the config path is ${describeFileType(info)}, not a regular file${hint}`);
  }
  if (!info.isDirectory()) {
    throw pathError(path, `the config path is ${describeFileType(info)}, but it was a directory when the agent started; make it a directory again, or restart the agent to read it as a file`);
  }
  const files: string[] = [];
  const skipped: ConfigIssue[] = [];
  const names: string[] = [];
  // As bytes: a name that is not UTF-8 would otherwise come back with U+FFFD in it, a name
  // that does not exist.
  for (const bytes of readingPath(path, () => readdirSync(path, { encoding: 'buffer' }))) {
    const name = bytes.toString('utf8');
    if (!isConfigFileName(name)) continue;
    if (!name.includes('\uFFFD') || Buffer.from(name, 'utf8').equals(bytes)) names.push(name);
    else skipped.push(fileIssue(join(path, escapeName(bytes)), 'skipped: the file name is not valid UTF-8; rename it to read it'));
  }
  // Before any entry is opened: every file costs a few system calls and a parse at every resync.
  if (names.length + skipped.length > MAX_CONFIG_FILES) {
    throw pathError(
      path,
      `the config directory holds ${(names.length + skipped.length).toLocaleString('en')} ip-masq* entries; the limit is ${MAX_CONFIG_FILES.toLocaleString('en')} (merge them into fewer files)`,
    );
  }
  for (const name of names.sort()) {
    const file = join(path, name);
    // kubelet's layout makes entries symlinks into ..data; stat follows them. A dangling one
    // is an error (keep the last good config), not a missing config.
    const entry = readingPath(file, () => statSync(file));
    // Not opened: a FIFO would block, a device may act on open.
    if (entry.isFile()) files.push(file);
    else skipped.push(fileIssue(file, `skipped: ${describeFileType(entry)}, not a regular file`));
  }
  return { ...readConfigFiles(files, path), skipped };
}

/** A file name that is not UTF-8, for messages: printable ASCII as it is, every other byte as `\xNN`. */
function escapeName(bytes: Buffer): string {
  return bytes.toString('latin1').replace(/[^ -[\]-~]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** Reads every file within one byte budget for them all: each one's text and last look, and the files that could not be read. */
function readConfigFiles(files: readonly string[], path: string) {
  const texts: ({ readonly file: string } & Extract<RegularFileRead, { text: string }>)[] = [];
  const issues: ConfigIssue[] = [];
  // One budget: a directory of many files is no way around the cap.
  let bytesRead = 0;
  for (const file of files) {
    try {
      // Checked again on the open descriptor: the path may have been swapped since the stat.
      const read = readRegularFile(file, MAX_CONFIG_BYTES - bytesRead);
      if ('notRegular' in read) {
        issues.push(fileIssue(file, `the config file changed into ${read.notRegular} while being read`));
        continue;
      }
      if ('tooBig' in read) {
        issues.push(fileIssue(file, sizeMessage(read.tooBig, read.grew, path, bytesRead)));
        break;
      }
      texts.push({ file, ...read });
      bytesRead += read.bytes;
    } catch (err) {
      issues.push(readIssue(file, err));
    }
  }
  return { listed: files, texts, issues };
}

/** What reading the files at a path gave, with the entries skipped. */
type FilesRead = ReturnType<typeof readConfigFiles> & { readonly skipped: readonly ConfigIssue[] };

/** Whether `file` resolves into one of kubelet's published `..<timestamp>` directories (settle.ts). */
function isPublishedByKubelet(file: string): boolean {
  try {
    return KUBELET_PUBLISHED.test(realpathSync.native(file));
  } catch {
    return false;
  }
}

function stillWritten(files: readonly string[]): ConfigError {
  const message = `the config file is still being written: it changed again within every ${SETTLE_QUIET_MS} ms for ${SETTLE_MAX_WAIT_MS / 1000} s; it is read once it has been unchanged for ${SETTLE_QUIET_MS} ms`;
  return new ConfigError(files.map((source) => fileIssue(source, message)));
}

/** Parses what was read (unchanged texts from the cache) and merges it; throws ConfigError with every issue. */
async function parseConfigFiles(read: FilesRead, opts: ConfigOptions, cache: ParseCache | undefined, manifestPath?: string): Promise<LoadedConfig> {
  const files = read.texts.map((t) => t.file);
  const only = read.texts.length === 1 && read.issues.length === 0 ? read.texts[0] : undefined;
  const manifest = only && only.file === manifestPath ? (await import('./manifest.js')).readManifest(only.text, only.file, opts) : undefined;
  if (manifest) {
    if (manifest.issues.length > 0) throw new ConfigError(manifest.issues);
    const loaded = fromFragments(manifest.fragments, files, [], opts);
    return { ...loaded, warnings: [...manifest.warnings, ...loaded.warnings].sort(byPosition) };
  }
  const fragments: ConfigFragment[] = [];
  const issues: ConfigIssue[] = [...read.issues];
  const warnings: ConfigIssue[] = [...read.skipped];
  const hashes: string[] = [];
  for (const { file, text, bytes } of read.texts) {
    // Only a missing path means the defaults: an empty file is one truncated by a writer, or one
    // whose content was lost, and `{}` says "the defaults" when that is what is meant.
    if (text.trim() === '') {
      issues.push(fileIssue(file, emptyMessage(bytes)));
      continue;
    }
    const hash = cache ? createHash('sha256').update(String(opts.enableIPv6)).update(text).digest('hex') : '';
    hashes.push(hash);
    const cached = cache?.get(file);
    const result = cached?.hash === hash ? cached.result : await parseConfigFragment(text, file, opts);
    if (cache && cached?.result !== result) cache.set(file, { hash, result });
    fragments.push(result.fragment);
    // Loops, not push(...spread): a file with very many bad entries would overflow the stack.
    for (const i of result.issues) issues.push(i);
    for (const w of result.warnings) warnings.push(w);
  }
  // Only the files of this read stay cached: renamed or removed files must not pile up.
  const current = new Set(read.listed);
  for (const map of cache ? [cache, cache.looks] : []) for (const file of map.keys()) if (!current.has(file)) map.delete(file);
  if (issues.length > 0) throw new ConfigError(issues);
  // Skipped entries are part of the result (their warnings), so they are part of the key.
  const memoKey = JSON.stringify([files, hashes, read.skipped.map((w) => w.message), opts]);
  if (cache?.last?.key === memoKey) return cache.last.loaded;
  const loaded = fromFragments(fragments, files, warnings, opts);
  if (cache) cache.last = { key: memoKey, loaded };
  return loaded;
}

function emptyMessage(bytes: number): string {
  const what = bytes === 0 ? 'empty (0 bytes)' : `only whitespace (${bytes.toLocaleString('en')} bytes)`;
  return `the config file is ${what}: not read as the defaults (a file being written, or one whose content was lost); write {} for the defaults, or remove the file`;
}

/**
 * parse.ts's parseConfigFragment, with the yaml library (about 15 ms to load and warm up, before
 * the first rules) loaded only for a text that the plain readers do not take.
 */
async function parseConfigFragment(text: string, file: string, opts: ConfigOptions): Promise<FragmentResult> {
  return readPlainFragment(text, file, opts) ?? (await import('./parse.js')).parseFragmentWithYaml(text, file, opts);
}

/** Why a file was not read: over the cap, or over what a directory's files have left of it. */
function sizeMessage(bytes: number, grew: boolean, dir: string, before: number): string {
  const limit = `the limit is ${MAX_CONFIG_BYTES.toLocaleString('en')} bytes`;
  if (grew) return `config file grew past the limit while it was read; ${limit}`;
  if (bytes > MAX_CONFIG_BYTES) return `config file is ${bytes.toLocaleString('en')} bytes; ${limit}`;
  return `config file is ${bytes.toLocaleString('en')} bytes, and with the files before it in ${dir} ${(before + bytes).toLocaleString('en')} bytes; ${limit} for all files of a directory together`;
}

/** Merges what was read into a LoadedConfig. */
function fromFragments(fragments: readonly ConfigFragment[], files: readonly string[], warnings: readonly ConfigIssue[], opts: ConfigOptions): LoadedConfig {
  const merged = mergeConfigFragments(fragments, opts);
  return {
    config: merged.config,
    warnings: [...warnings, ...merged.warnings],
    files,
    usingDefaults: fragments.every(isEmptyFragment),
    hash: hashConfig(merged.config),
    positions: merged.positions,
  };
}
