import { watch, type FSWatcher, type WatchListener } from 'node:fs';
import { basename, dirname } from 'node:path';
import { isConfigFileName } from '../config/load.js';
import { KUBELET_ENTRY } from '../config/settle.js';
import type { Clock } from './clock.js';
import type { Logger } from '../observe/log.js';

/** node:fs `watch` as the watcher uses it; tests pass a fake that fires events on demand. */
export type WatchFn = (dir: string, options: { persistent: boolean }, listener: WatchListener<string>) => FSWatcher;

/**
 * Whether an event on `filename` in the watched directory `dir` can change the config at `path`:
 * the config file's own name (file mode) or any `ip-masq*` entry (directory mode), kubelet's
 * atomic swap entries, the directory itself (Linux names a deleted or moved watched directory
 * by its own name), and an event without a name (the platform could not say which entry).
 */
export function isRelevantConfigEvent(filename: string | null | undefined, dir: string, path: string, directoryMode: boolean): boolean {
  if (filename === null || filename === undefined || filename === '') return true;
  if (KUBELET_ENTRY.test(filename) || filename === basename(dir)) return true;
  return directoryMode ? isConfigFileName(filename) : filename === basename(path);
}

/**
 * Quiet time after the last relevant event before the sync. kubelet's atomic writer makes its
 * whole burst (new dir, `..data_tmp`, rename over `..data`, old dir removed) within a millisecond,
 * so a short wait still makes one sync of it, and a swap is live sooner; an editor's or a script's
 * write of a file in place is as quick. A file written in place more slowly is not read half-way:
 * the loader waits until it has settled (config/settle.ts).
 */
export const WATCH_DEBOUNCE_MS = 10;

/** Options for watching the config location. */
export interface ConfigWatchOptions {
  /** The --config path: a file (its directory is watched) or a directory (watched itself). */
  readonly path: string;
  readonly isDirectory: () => boolean;
  /** Called once per burst of events, after WATCH_DEBOUNCE_MS of quiet. */
  readonly onChange: () => void;
  readonly clock: Clock;
  readonly log: Logger;
  /** Defaults to node:fs `watch`. */
  readonly watch?: WatchFn;
}

/**
 * Watches the DIRECTORY holding the config: kubelet swaps a `..data` symlink, and a watch on the
 * file itself goes silent after the first update. A directory that does not exist yet is retried,
 * and a failed watcher re-created, every second. Returns a function that stops watching.
 */
export function watchConfig(opts: ConfigWatchOptions): () => void {
  const { clock, log } = opts;
  let watcher: FSWatcher | undefined;
  let cancelDebounce: (() => void) | undefined;
  let cancelRetry: (() => void) | undefined;
  let stopped = false;
  // Since the last watch that worked, the directory could not be watched: said once, not per retry.
  let failing = false;

  const fire = (): void => {
    cancelDebounce?.();
    cancelDebounce = clock.setTimer(WATCH_DEBOUNCE_MS, opts.onChange);
  };
  const close = (): void => {
    watcher?.close();
    watcher = undefined;
  };
  const retry = (): void => {
    close();
    failing = true;
    if (!stopped && !cancelRetry) cancelRetry = clock.setTimer(1000, open);
  };

  function open(): void {
    cancelRetry = undefined;
    if (stopped) return;
    const directoryMode = opts.isDirectory();
    const dir = directoryMode ? opts.path : dirname(opts.path);
    try {
      watcher = (opts.watch ?? watch)(dir, { persistent: false }, (eventType, filename) => {
        // Other files in the directory (logs, other ConfigMap keys) change without touching
        // the config: a sync for each of their writes would be work for nothing.
        const relevant = isRelevantConfigEvent(filename, dir, opts.path, directoryMode);
        if (relevant) fire();
        // Watch anew after every relevant event and every entry created, deleted or moved: if the
        // directory was deleted (and maybe re-created, possibly with the same inode number), the
        // old watch would stay silent from now on. A plain write to another file cannot be that.
        if (!relevant && eventType === 'change') return;
        close();
        open();
      });
      watcher.on('error', (e) => {
        log.warn('config watcher failed; re-creating it', { dir, error: e.message });
        retry();
      });
      log[failing ? 'info' : 'debug']('watching config directory', { dir });
      if (failing) fire(); // it may have appeared with the file in it
      failing = false;
    } catch (e) {
      if (!failing) {
        log.warn('cannot watch the config directory yet; retrying (the resync timer still applies)', {
          dir,
          error: (e as Error).message,
        });
      }
      retry();
    }
  }

  open();
  return () => {
    stopped = true;
    cancelDebounce?.();
    cancelRetry?.();
    close();
  };
}
