// Reads a config source's text for the operator commands, which look inside a file before the
// loader does (a ConfigMap manifest, the line:column of each CIDR). Part of the config loader:
// one of the few modules allowed to touch node:fs.
import { readFile, stat } from 'node:fs/promises';

/** The text of a regular file (symlinks followed); undefined for a directory or a missing path. */
export async function readRegularFileText(path: string): Promise<string | undefined> {
  let info;
  try {
    info = await stat(path);
  } catch {
    // The loader reports missing and unreadable paths with the OS reason.
    return undefined;
  }
  if (!info.isFile()) return undefined;
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}
