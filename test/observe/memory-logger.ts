import type { Fields, Level, Logger } from '../../src/observe/log.js';

/** A logger that keeps every entry in memory, for tests. */
export function createMemoryLogger(): Logger & { readonly entries: { level: string; msg: string; fields: Fields }[] } {
  const entries: { level: string; msg: string; fields: Fields }[] = [];
  const at =
    (level: Level) =>
    (msg: string, fields: Fields = {}) =>
      void entries.push({ level, msg, fields });
  return { entries, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), trace: at('trace') };
}
