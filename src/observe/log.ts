import { pino, type Logger as PinoLogger } from 'pino';

/** Structured log fields. */
export type Fields = Readonly<Record<string, unknown>>;

/** The logger the core uses: one JSON line per event. */
export interface Logger {
  error(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  /** Shown with --v >= 2: per-sync detail. */
  debug(msg: string, fields?: Fields): void;
  /** Shown with --v >= 4: every command run. */
  trace(msg: string, fields?: Fields): void;
}

/** Maps klog's --v to a pino level. */
export function levelForVerbosity(v: number): 'info' | 'debug' | 'trace' {
  return v >= 4 ? 'trace' : v >= 2 ? 'debug' : 'info';
}

function wrap(p: PinoLogger): Logger {
  return {
    error: (msg, f) => p.error(f ?? {}, msg),
    warn: (msg, f) => p.warn(f ?? {}, msg),
    info: (msg, f) => p.info(f ?? {}, msg),
    debug: (msg, f) => p.debug(f ?? {}, msg),
    trace: (msg, f) => p.trace(f ?? {}, msg),
  };
}

/** Creates the process logger (JSON lines on stdout, synchronous so nothing is lost on exit). */
export function createLogger(verbosity: number): Logger {
  return wrap(
    pino(
      { level: levelForVerbosity(verbosity), base: { component: 'ip-masq-agent' }, formatters: { level: (label) => ({ level: label }) } },
      pino.destination({ dest: 1, sync: true }),
    ),
  );
}

/** A logger that keeps every entry in memory, for tests. */
export function createMemoryLogger(): Logger & { readonly entries: { level: string; msg: string; fields: Fields }[] } {
  const entries: { level: string; msg: string; fields: Fields }[] = [];
  const at = (level: string) => (msg: string, fields: Fields = {}) => void entries.push({ level, msg, fields });
  return { entries, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), trace: at('trace') };
}
