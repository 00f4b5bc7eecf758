// When a config file that was just written may be read as a config. A writer that rewrites the
// file in place (truncate, then write, maybe line by line) leaves it empty or cut short for a
// while, and every such state can parse as a valid config with fewer CIDRs. So a file is used
// only once it has settled: unchanged for SETTLE_QUIET_MS, by the kernel's own record of its last
// change (mtime, ctime) or by two looks that long apart. kubelet's atomic writer never needs the
// wait: it writes a new `..<timestamp>` directory completely before it swaps `..data` to it.
// Pure: the loader (load.ts) takes the looks and does the waiting.
import type { Stats } from 'node:fs';

/** How long a config file must be unchanged before it is read as a config. */
export const SETTLE_QUIET_MS = 500;

/** The longest one load waits for its files to settle; then it fails and the last good config stays. */
export const SETTLE_MAX_WAIT_MS = 5000;

/** The `<timestamp>` of kubelet's `..<timestamp>` directories, e.g. `2024_01_02_03_04_05.123`. */
const KUBELET_TIMESTAMP = String.raw`\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\d+`;

/** kubelet's atomic writer: `..data` (the live link), `..data_tmp` (the next one), `..<timestamp>` dirs. */
export const KUBELET_ENTRY = new RegExp(String.raw`^\.\.(data|data_tmp|${KUBELET_TIMESTAMP})$`);

/**
 * Matches a real path (links resolved) that lies in one of kubelet's `..<timestamp>` directories:
 * written completely before it was published, and never written again.
 */
export const KUBELET_PUBLISHED = new RegExp(String.raw`(^|/)\.\.${KUBELET_TIMESTAMP}(/|$)`);

/** What one look at a file saw: its identity, size and change times (ms since the epoch). */
export type FileLook = Pick<Stats, 'dev' | 'ino' | 'size' | 'mtimeMs' | 'ctimeMs'>;

/** Per file, the signature seen and since when, across the looks of one load. */
export type SeenLooks = Map<string, { readonly signature: string; readonly since: number }>;

/**
 * How many ms more `file` must stay unchanged before it counts as settled; 0 when it has. The
 * kernel's change times count as the first look; a second look that saw the same signature at
 * least SETTLE_QUIET_MS ago counts too, for a clock stepped back (a change time in the future) or
 * timestamps coarser than the writes. Records this look in `seen`.
 */
export function settleWaitMs(file: string, look: FileLook, now: number, seen: SeenLooks): number {
  const signature = `${look.dev}:${look.ino}:${look.size}:${look.mtimeMs}:${look.ctimeMs}`;
  let first = seen.get(file);
  if (first?.signature !== signature) {
    first = { signature, since: now };
    seen.set(file, first);
  }
  const unchangedFor = Math.max(now - Math.max(look.mtimeMs, look.ctimeMs), now - first.since);
  return Math.max(0, SETTLE_QUIET_MS - unchangedFor);
}
