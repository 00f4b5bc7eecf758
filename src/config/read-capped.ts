// Reads a config file with a byte cap, so that no file (or a file growing while it is read) can
// make the agent read, parse and hold more than it is proven to handle. Part of the config loader:
// one of the few modules allowed to touch node:fs.
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';

/** What readCappedText found: the text, or that the file is larger than the cap. */
export type CappedRead =
  | { readonly ok: true; readonly text: string; readonly bytes: number }
  /** `bytes` is the size stat gave, or cap + 1 when the file grew past the cap while read. */
  | { readonly ok: false; readonly reason: 'too-big'; readonly bytes: number; readonly grew: boolean }
  | { readonly ok: false; readonly reason: 'not-a-file' };

/**
 * Reads at most `maxBytes` + 1 bytes of a regular file as UTF-8. The size is checked before any
 * content is read, and again by what the reads return. The open does not block on a FIFO, which
 * is refused as not a regular file. Throws the OS error when the file cannot be opened or read.
 */
export async function readCappedText(path: string, maxBytes: number): Promise<CappedRead> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const info = await handle.stat();
    if (!info.isFile()) return { ok: false, reason: 'not-a-file' };
    if (info.size > maxBytes) return { ok: false, reason: 'too-big', bytes: info.size, grew: false };
    // Room for one byte more than allowed tells a file that grew past the cap since the stat.
    let buffer = Buffer.alloc(info.size + 1);
    let filled = 0;
    for (;;) {
      if (filled === buffer.length) {
        if (filled > maxBytes) return { ok: false, reason: 'too-big', bytes: filled, grew: true };
        const bigger = Buffer.alloc(Math.min(maxBytes + 1, buffer.length * 2));
        buffer.copy(bigger, 0, 0, filled);
        buffer = bigger;
      }
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) return { ok: true, text: buffer.toString('utf8', 0, filled), bytes: filled };
      filled += bytesRead;
    }
  } finally {
    await handle.close();
  }
}
