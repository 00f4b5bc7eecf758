// Reads config files without ever blocking and without trusting a stat taken earlier: a FIFO
// opened for reading blocks until a writer appears, and the path can be swapped between a stat
// and the open. So the file is opened non-blocking and checked on the open descriptor (fstat).
// Part of the config loader: one of the few modules allowed to touch node:fs.
import { constants, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';

/** What a non-regular file is, for messages: `a directory`, `a FIFO (named pipe)`, ... */
export function describeFileType(info: Stats): string {
  if (info.isDirectory()) return 'a directory';
  if (info.isFIFO()) return 'a FIFO (named pipe)';
  if (info.isSocket()) return 'a socket';
  if (info.isCharacterDevice()) return 'a character device';
  if (info.isBlockDevice()) return 'a block device';
  if (info.isSymbolicLink()) return 'a symbolic link';
  return info.isFile() ? 'a regular file' : 'not a regular file';
}

/** A regular file's text, or what the path turned out to be instead. */
export type RegularFileRead = { readonly text: string } | { readonly notRegular: string };

/**
 * Reads `path` (symlinks followed) if it is a regular file, checked on the open descriptor;
 * otherwise says what it is, without reading. fs errors (ENOENT, EACCES, ...) are thrown as they are.
 */
export async function readRegularFile(path: string): Promise<RegularFileRead> {
  // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; for a regular
  // file it changes nothing.
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    const info = await handle.stat();
    if (!info.isFile()) return { notRegular: describeFileType(info) };
    return { text: await handle.readFile('utf8') };
  } finally {
    await handle.close();
  }
}

/** The text of a regular file (symlinks followed); undefined for a directory, any other non-regular file, or a missing path. */
export async function readRegularFileText(path: string): Promise<string | undefined> {
  try {
    // A device or socket is not even opened: opening some devices has effects of its own.
    if (!(await stat(path)).isFile()) return undefined;
    const r = await readRegularFile(path);
    return 'text' in r ? r.text : undefined;
  } catch {
    // The loader reports missing and unreadable paths with the OS reason.
    return undefined;
  }
}
