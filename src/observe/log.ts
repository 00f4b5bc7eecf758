// One JSON line per event on stdout, written synchronously so nothing is lost on exit or crash.
// The lines are those pino 10 wrote (test/golden/observe/log-lines.jsonl): `level` as a word,
// `time` in epoch ms, `component`, the fields in order, `msg` last. A few lines of our own replace
// pino, which cost 2.4 MiB resident and loaded worker_threads for nothing (README "Performance").
import { writeSync } from 'node:fs';

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

/** A log level, from the most to the least severe. */
export type Level = 'error' | 'warn' | 'info' | 'debug' | 'trace';

const SEVERITY: Readonly<Record<Level, number>> = { error: 50, warn: 40, info: 30, debug: 20, trace: 10 };

/** Maps klog's --v to the most verbose level shown. */
export function levelForVerbosity(v: number): 'info' | 'debug' | 'trace' {
  return v >= 4 ? 'trace' : v >= 2 ? 'debug' : 'info';
}

/**
 * JSON.stringify, except that a circular reference becomes "[Circular]" and a bigint its digits
 * (as pino's fallback did) instead of throwing: a log line must never crash the agent.
 */
function stringifyValue(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch {
    const ancestors: unknown[] = [];
    const walk = (v: unknown): string | undefined => {
      if (typeof v === 'bigint') return v.toString();
      if (typeof v !== 'object' || v === null) return JSON.stringify(v);
      const json = (v as { toJSON?: () => unknown }).toJSON;
      if (typeof json === 'function') return walk(json.call(v));
      if (ancestors.includes(v)) return '"[Circular]"';
      ancestors.push(v);
      const out = Array.isArray(v)
        ? `[${v.map((x) => walk(x) ?? 'null').join(',')}]`
        : `{${Object.entries(v)
            .flatMap(([k, x]) => {
              const s = walk(x);
              return s === undefined ? [] : [`${JSON.stringify(k)}:${s}`];
            })
            .join(',')}}`;
      ancestors.pop();
      return out;
    };
    return walk(value);
  }
}

/** One log line, newline included: `{"level":..,"time":..,"component":"ip-masq-agent",...fields,"msg":..}`. */
export function formatLogLine(level: Level, time: number, msg: string, fields: Fields = {}): string {
  let line = `{"level":"${level}","time":${time},"component":"ip-masq-agent"`;
  for (const key of Object.keys(fields)) {
    const text = stringifyValue(fields[key]);
    if (text !== undefined) line += `,${JSON.stringify(key)}:${text}`;
  }
  return `${line},"msg":${JSON.stringify(msg)}}\n`;
}

/** Where lines go; the default writes to stdout. */
export type LineSink = (line: string) => void;

const pause = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes a line to stdout synchronously. A full non-blocking pipe (EAGAIN) is waited out 100 ms at
 * a time, as pino's writer did; any other failure (stdout closed) drops the line, and the agent
 * goes on keeping the rules.
 */
function writeStdout(line: string): void {
  let buf = Buffer.from(line, 'utf8');
  while (buf.length > 0) {
    try {
      buf = buf.subarray(writeSync(1, buf));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EAGAIN' && code !== 'EBUSY') return;
      Atomics.wait(pause, 0, 0, 100);
    }
  }
}

/** Creates the process logger: JSON lines on stdout (or `sink`), up to the level --v asks for. */
export function createLogger(verbosity: number, sink: LineSink = writeStdout, now: () => number = Date.now): Logger {
  const shown = SEVERITY[levelForVerbosity(verbosity)];
  const at =
    (level: Level) =>
    (msg: string, fields?: Fields): void => {
      if (SEVERITY[level] >= shown) sink(formatLogLine(level, now(), msg, fields));
    };
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), trace: at('trace') };
}

/** A logger that keeps every entry in memory, for tests. */
export function createMemoryLogger(): Logger & { readonly entries: { level: string; msg: string; fields: Fields }[] } {
  const entries: { level: string; msg: string; fields: Fields }[] = [];
  const at =
    (level: string) =>
    (msg: string, fields: Fields = {}) =>
      void entries.push({ level, msg, fields });
  return { entries, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), trace: at('trace') };
}
