// Reads a config source's text for the operator commands, which look inside a file before the
// loader does (a ConfigMap manifest, the line:column of each CIDR). Part of the config loader:
// one of the few modules allowed to touch node:fs.
import { MAX_CONFIG_BYTES } from '../limits.js';
import { readCappedText } from './read-capped.js';

/**
 * The text of a regular file (symlinks followed); undefined for a directory, a missing path, or a
 * file over the byte cap (the loader then reports it with its size).
 */
export async function readRegularFileText(path: string): Promise<string | undefined> {
  try {
    const read = await readCappedText(path, MAX_CONFIG_BYTES);
    return read.ok ? read.text : undefined;
  } catch {
    // The loader reports missing and unreadable paths with the OS reason.
    return undefined;
  }
}
