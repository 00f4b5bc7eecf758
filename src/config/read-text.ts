// Reads config files without ever blocking and without trusting an earlier stat: a FIFO opened
// for reading blocks until a writer appears, and the path can be swapped between a stat and the
// open, so the file is opened non-blocking and checked on the open descriptor (fstat). The calls
// are the synchronous ones: one system call each on a local file, where the promise forms cost
// about 0.5 ms of CPU per read of a small config (a libuv thread round trip per call), every resync.
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import type { FileLook } from './settle.js';

/** What a non-regular file is, for messages: `a directory`, `a FIFO (named pipe)`, ... */
export function describeFileType(info: Stats): string {
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a FIFO (named pipe)';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  return info.isFile() ? 'a regular file' : 'not a regular file';
}

/**
 * A regular file's text (with a look at the file taken after reading it, so a write during the
 * read shows as a recent change), or what the path turned out to be instead, or that it is larger
 * than the cap (`bytes` is the size stat gave, or cap + 1 when the file grew past the cap while read).
 */
export type RegularFileRead = { readonly text: string; readonly bytes: number; readonly look: FileLook } | { readonly notRegular: string } | { readonly tooBig: number; readonly grew: boolean };

/**
 * Reads `path` (symlinks followed) if it is a regular file, checked on the open descriptor;
 * otherwise says what it is, without reading. At most `maxBytes` + 1 bytes are read, so a file
 * growing under us (or a /proc file whose size says 0) cannot get past the cap. fs errors are thrown.
 */
export function readRegularFile(path: string, maxBytes: number): RegularFileRead {
  // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; for a regular
  // file it changes nothing.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    const info = fstatSync(fd);
    if (!info.isFile()) return { notRegular: describeFileType(info) };
    if (info.size > maxBytes) return { tooBig: info.size, grew: false };
    // Room for one byte more than allowed tells a file that grew past the cap since the stat.
    let buffer = Buffer.alloc(info.size + 1);
    let filled = 0;
    for (;;) {
      if (filled === buffer.length) {
        if (filled > maxBytes) return { tooBig: filled, grew: true };
        buffer = Buffer.concat([buffer, Buffer.alloc(Math.min(maxBytes + 1, buffer.length * 2) - filled)]);
      }
      const bytesRead = readSync(fd, buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) return { text: buffer.toString('utf8', 0, filled), bytes: filled, look: fstatSync(fd) };
      filled += bytesRead;
    }
  } finally {
    closeSync(fd);
  }
}
