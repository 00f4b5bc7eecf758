import { watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import type { Clock } from './clock.js';
import type { Logger } from '../observe/log.js';

/** Options for watching the config location. */
export interface ConfigWatchOptions {
  /** The --config path: a file (its directory is watched) or a directory (watched itself). */
  readonly path: string;
  readonly isDirectory: () => boolean;
  /** Called once per burst of events, after `debounceMs` of quiet. */
  readonly onChange: () => void;
  readonly clock: Clock;
  readonly log: Logger;
  readonly debounceMs?: number;
  /** How often to retry when the directory does not exist or the watcher failed. */
  readonly retryMs?: number;
}

/**
 * Watches the DIRECTORY holding the config: kubelet swaps a `..data` symlink, and a watch on the
 * file itself goes silent after the first update. A directory that does not exist yet is retried;
 * a watcher error re-creates the watcher. Returns a function that stops watching.
 */
export function watchConfig(opts: ConfigWatchOptions): () => void {
  const debounceMs = opts.debounceMs ?? 50;
  const retryMs = opts.retryMs ?? 1000;
  let watcher: FSWatcher | undefined;
  let cancelDebounce: (() => void) | undefined;
  let cancelRetry: (() => void) | undefined;
  let stopped = false;
  let warned = false;

  const fire = (): void => {
    cancelDebounce?.();
    cancelDebounce = opts.clock.setTimer(debounceMs, () => {
      cancelDebounce = undefined;
      opts.onChange();
    });
  };

  const open = (): void => {
    cancelRetry = undefined;
    if (stopped) return;
    const dir = opts.isDirectory() ? opts.path : dirname(opts.path);
    try {
      watcher = watch(dir, { persistent: false }, () => {
        fire();
        // Watch anew after every event: if the directory was deleted (and maybe re-created,
        // possibly with the same inode number), the old watch would stay silent from now on.
        // Events are rare (config changes), and the debounced sync re-reads everything anyway.
        watcher?.close();
        watcher = undefined;
        open();
      });
      watcher.on('error', (e) => {
        opts.log.warn('config watcher failed; re-creating it', { dir, error: e.message });
        reopen();
      });
      if (warned) {
        opts.log.info('watching config directory', { dir });
        fire(); // it may have appeared with the file in it
      } else {
        opts.log.debug('watching config directory', { dir });
      }
      warned = false;
    } catch (e) {
      if (!warned) {
        opts.log.warn('cannot watch the config directory yet; retrying (the resync timer still applies)', {
          dir,
          error: (e as Error).message,
        });
        warned = true;
      }
      cancelRetry = opts.clock.setTimer(retryMs, open);
    }
  };

  const reopen = (): void => {
    watcher?.close();
    watcher = undefined;
    warned = true;
    if (!stopped && !cancelRetry) cancelRetry = opts.clock.setTimer(retryMs, open);
  };

  open();
  return () => {
    stopped = true;
    cancelDebounce?.();
    cancelRetry?.();
    watcher?.close();
  };
}
