// One JSON line per event on stdout, written synchronously while stdout takes it, so nothing is lost
// on exit or crash; held in a bounded buffer while it does not, so a stalled log pipeline never
// stalls the agent.
// The lines are those pino 10 wrote (test/golden/observe/log-lines.jsonl, docs/performance.md):
// `level` as a word, `time` in epoch ms, `component`, the fields in order, `msg` last; except that
// an Error is written as its message and stack, not `{}`, and each key appears once.
import { fstatSync, writeSync } from 'node:fs';
import { cutExcerpt } from '../excerpt.js';
import { MAX_ERROR_BYTES } from '../limits.js';

/** Structured log fields. */
export type Fields = Readonly<Record<string, unknown>>;

/** The log levels, from the most to the least severe. */
const LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const;

/** A log level. */
export type Level = (typeof LEVELS)[number];

/**
 * The logger the core uses: one JSON line per event. debug is shown with --v >= 2 (per-sync
 * detail), trace with --v >= 4 (every command run).
 */
export type Logger = Record<Level, (msg: string, fields?: Fields) => void>;

/** Maps klog's --v to the most verbose level shown. */
export function levelForVerbosity(v: number): 'info' | 'debug' | 'trace' {
  return v >= 4 ? 'trace' : v >= 2 ? 'debug' : 'info';
}

/** An Error as a log value. JSON.stringify writes one as `{}` (its fields are not enumerable); a cause's message is cut at MAX_ERROR_BYTES. */
function errorValue(e: Error): { message: string; stack: string | undefined; cause: string | undefined } {
  const c = e.cause;
  const cause = c instanceof Error ? c.message : typeof c === 'string' ? c : plainJson(c);
  // JSON leaves out what is undefined: a stack or a cause the error lacks.
  return { message: e.message, stack: e.stack, cause: c === undefined ? undefined : cutExcerpt(cause, MAX_ERROR_BYTES) };
}

/** A cause that is neither an Error nor a string, as plain JSON: not through errorValue, which a cause holding its own Error would recurse into. */
function plainJson(v: unknown): string {
  try {
    return JSON.stringify(v) ?? typeof v;
  } catch {
    return typeof v;
  }
}

/** JSON.rawJSON (ES2025; the ES2022 lib does not declare it): a bigint written as its digits, as pino's fallback did. */
const rawJson = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON;

/**
 * JSON.stringify, except that an Error, at any depth, is written as errorValue, a bigint as its
 * digits and a circular reference as "[Circular]", instead of throwing: a log line must never
 * crash the agent.
 */
function stringifyValue(value: unknown): string | undefined {
  // The objects from the root to the one being written: `this` is the holder of each value, so
  // whatever lies above it is finished.
  const ancestors: unknown[] = [];
  return JSON.stringify(value, function (this: unknown, _key: string, v: unknown): unknown {
    if (typeof v === 'bigint') return rawJson(v.toString());
    const out = v instanceof Error ? errorValue(v) : v;
    if (typeof out !== 'object' || out === null) return out;
    while (ancestors.length > 0 && ancestors[ancestors.length - 1] !== this) ancestors.pop();
    if (ancestors.includes(out)) return '[Circular]';
    ancestors.push(out);
    return out;
  });
}

/** The keys every line has; a field may not repeat them, or a log pipeline could read a forged level, time or message. */
const LINE_KEYS: ReadonlySet<string> = new Set(['level', 'time', 'component', 'msg']);

/**
 * One log line, newline included: `{"level":..,"time":..,"component":"ip-masq-agent",...fields,"msg":..}`.
 * Each key appears once: a field named level, time, component or msg is left out, the logger's own value wins.
 */
export function formatLogLine(level: Level, time: number, msg: string, fields: Fields = {}): string {
  const own = Object.fromEntries(Object.entries(fields).filter(([key]) => !LINE_KEYS.has(key)));
  return `${stringifyValue({ level, time, component: 'ip-masq-agent', ...own, msg })}\n`;
}

/** Options of createLineWriter; the defaults are the agent's stdout. */
export interface LineWriterOptions {
  /** Takes what it can without blocking: returns the bytes written, throws EAGAIN when none fit (default: fd 1, made non-blocking by createStdoutWriter). */
  readonly write?: (buf: Buffer) => number;
  /** Bytes held while the output is blocked; lines beyond are dropped and counted (default 64 KiB). */
  readonly maxBufferedBytes?: number;
  /** Calls `fn` once after `ms`; must not keep the process alive. */
  readonly setTimer?: (ms: number, fn: () => void) => void;
  /** Stamps the note of dropped lines (default Date.now). */
  readonly now?: () => number;
}

/** The line written once a blocked output takes lines again, if any were lost meanwhile. */
export const DROPPED_NOTE = 'log output was blocked (stdout full or not read); lines were dropped meanwhile';

const pause = new Int32Array(new SharedArrayBuffer(4));

/** True for the errors a full non-blocking output gives. */
function isFull(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EBUSY';
}

/**
 * Creates a writer that writes each line at once while the output takes it (synchronously, so
 * nothing is lost on a crash), and while it does not (a pipe nobody reads, or read at 64 B/s),
 * holds up to `maxBufferedBytes` of whole lines and retries on a timer: a stalled log pipeline
 * costs log lines, counted, never a sync or an HTTP answer. Lines are kept whole and in order.
 */
export function createLineWriter(opts: LineWriterOptions = {}) {
  const writeSome = opts.write ?? ((buf: Buffer) => writeSync(1, buf));
  const maxBytes = opts.maxBufferedBytes ?? 64 * 1024;
  const setTimer = opts.setTimer ?? ((ms: number, fn: () => void) => void setTimeout(fn, ms).unref());
  const now = opts.now ?? Date.now;
  // Whole lines not yet written (the first perhaps in part), each ending in its one newline.
  let held = Buffer.alloc(0);
  let dropped = 0;
  let droppedWhileBlocked = 0;
  let blockedSince: number | undefined;
  let retrying = false;

  /** Writes what is held until none is (true) or the output is full (false). */
  const drain = (): boolean => {
    while (held.length > 0) {
      try {
        const n = writeSome(held);
        if (n <= 0) return false;
        held = held.subarray(n);
      } catch (e) {
        if (isFull(e)) return false;
        // Closed or broken output (EPIPE, EBADF): this line is lost; the agent goes on keeping the rules.
        held = held.subarray(held.indexOf(10) + 1 || held.length);
        dropped++;
      }
    }
    return true;
  };
  const hold = (line: string): void => {
    // Copied onto what is held only while the output is blocked; the common case is one buffer.
    const buf = Buffer.from(line, 'utf8');
    held = held.length === 0 ? buf : Buffer.concat([held, buf]);
  };
  /** Drains; once a blocked output is empty again, notes what was lost. True when all is written. */
  const settle = (): boolean => {
    if (!drain()) {
      blockedSince ??= now();
      return false;
    }
    if (blockedSince === undefined) return true;
    const lost = droppedWhileBlocked;
    const blockedMs = now() - blockedSince;
    blockedSince = undefined;
    droppedWhileBlocked = 0;
    if (lost === 0) return true;
    hold(formatLogLine('warn', now(), DROPPED_NOTE, { dropped: lost, blockedMs, metric: 'ip_masq_agent_log_lines_dropped_total' }));
    return settle();
  };
  const pump = (): void => {
    retrying = false;
    if (settle()) return;
    retrying = true;
    // A blocked output is tried again every 100 ms.
    setTimer(100, pump);
  };
  return {
    /** Writes the line now if the output takes it, else holds it, or drops it when the buffer is full. */
    write(line: string): void {
      // Held lines go first; a line that does not fit while some are held is dropped whole.
      if (held.length > 0 && held.length + Buffer.byteLength(line, 'utf8') > maxBytes) {
        dropped++;
        droppedWhileBlocked++;
        return;
      }
      hold(line);
      if (!retrying) pump();
    },
    /** Lines dropped since start: the buffer was full while the output was blocked, or the output is closed. */
    dropped: (): number => dropped,
    /** Writes what is held, waiting at most `timeoutMs` for a blocked output: for the last lines at exit. */
    flush(timeoutMs: number): void {
      const until = now() + timeoutMs;
      while (!settle() && now() < until) Atomics.wait(pause, 0, 0, 10);
    },
  };
}

/** A line sink that never blocks the event loop on a full or slow output. */
export type LineWriter = ReturnType<typeof createLineWriter>;

/**
 * The writer for the agent's stdout. A pipe or socket there is inherited blocking, so a write to
 * it would stall the whole agent once it is full; node's own stream for it (made here, never
 * written) switches the descriptor to non-blocking, so a full pipe answers EAGAIN instead.
 */
export function createStdoutWriter(): LineWriter {
  try {
    const stat = fstatSync(1);
    if (stat.isFIFO() || stat.isSocket()) void process.stdout;
  } catch {
    // No stdout at all: every write fails and is counted as dropped.
  }
  return createLineWriter();
}

/** Creates the process logger: JSON lines to `sink` (the agent's: a stdout LineWriter), up to the level --v asks for. */
export function createLogger(verbosity: number, sink: (line: string) => void, now: () => number = Date.now): Logger {
  const shown = LEVELS.indexOf(levelForVerbosity(verbosity));
  const at = (level: Level) => (msg: string, fields?: Fields) => {
    if (LEVELS.indexOf(level) <= shown) sink(formatLogLine(level, now(), msg, fields));
  };
  return { error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), trace: at('trace') };
}
