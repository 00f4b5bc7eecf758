// Runs the built agent (`node dist/bin/ip-masq-agent.js`) as a real process inside a test network
// namespace, collects its JSON log lines, and waits for log messages with bounded timeouts.
// Shared by the agent integration tests and the agent benchmarks (bench/). Nothing here touches the
// machine's own network namespace: the agent only ever runs under `ip netns exec <ns>`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The agent as it ships: the bundle `npm run build` writes (package.json's bin, the image's entry point). */
export const AGENT_MAIN = fileURLToPath(new URL('../../bin/ip-masq-agent.js', import.meta.url));

/** One JSON log line of the agent. */
export interface LogLine {
  readonly level: string;
  readonly msg: string;
  /** Epoch milliseconds, as the agent stamps it (Date.now()). */
  readonly time: number;
  /** Every field of the line, parsed. */
  readonly fields: Readonly<Record<string, unknown>>;
  readonly raw: string;
}

/** What to wait for: a substring of the message, or a predicate on the whole line. */
export type LogMatch = string | ((line: LogLine) => boolean);

/** How a stopped or exited agent ended. */
export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** The result of stop(): how it ended and how long it took after the signal. */
export interface StopResult extends ExitInfo {
  readonly elapsedMs: number;
}

/** A running agent process. */
export interface AgentProcess {
  readonly pid: number;
  /** Every log line so far, in order. */
  readonly logs: readonly LogLine[];
  /** Lines on stdout that were not JSON (there should be none). */
  readonly otherOutput: readonly string[];
  /** Everything written to stderr so far. */
  stderr(): string;
  /** The current log position, to wait for or count lines written after it. */
  mark(): number;
  /** Log lines from `since` on that match. */
  matching(match: LogMatch, since?: number): LogLine[];
  /** Resolves with the first line from `since` on that matches; rejects on timeout or exit. */
  waitForLog(match: LogMatch, opts?: { since?: number; timeoutMs?: number }): Promise<LogLine>;
  /** Sends a signal to the agent. */
  signal(sig: NodeJS.Signals): void;
  /** Resolves when the process has exited (no timeout: pair it with stop or a bounded wait). */
  readonly exited: Promise<ExitInfo>;
  /** Sends SIGTERM and waits (bounded) for the exit; SIGKILLs and throws past the bound. */
  stop(timeoutMs?: number): Promise<StopResult>;
  /** SIGKILL if still running; for cleanup in `finally`. Returns once the process is gone. */
  kill(): Promise<void>;
}

/** Options of startAgent. */
export interface StartAgentOptions {
  /** Extra environment variables for the agent (merged over this process's environment). */
  readonly env?: Readonly<Record<string, string>>;
  /** A command that execs the agent, e.g. `['prlimit', '--nofile=1024:1024', '--']` (runs inside the namespace). */
  readonly prefix?: readonly string[];
  /** A file descriptor for the agent's stdout instead of a pipe read here (its log lines are then not collected). */
  readonly stdout?: number;
}

function describeLine(l: LogLine): string {
  return l.raw.length > 400 ? `${l.raw.slice(0, 397)}...` : l.raw;
}

function matches(match: LogMatch, line: LogLine): boolean {
  return typeof match === 'string' ? line.msg.includes(match) : match(line);
}

/** A log field as text: a string as itself, anything else as its JSON, absent as ''. */
function textOf(v: unknown): string {
  return typeof v === 'string' ? v : v === undefined || v === null ? '' : JSON.stringify(v);
}

function parseLine(raw: string): LogLine | undefined {
  try {
    const v = JSON.parse(raw) as unknown;
    if (typeof v !== 'object' || v === null) return undefined;
    const fields = v as Record<string, unknown>;
    return {
      level: textOf(fields['level']),
      msg: textOf(fields['msg']),
      time: typeof fields['time'] === 'number' ? fields['time'] : Date.now(),
      fields,
      raw,
    };
  } catch {
    return undefined;
  }
}

/**
 * Starts `node dist/bin/ip-masq-agent.js ...args` inside namespace `ns`. The HTTP endpoints are turned
 * off (`--healthz-bind-address= --metrics-bind-address=`) unless `args` set them, so tests of the
 * sync loop do not depend on the server.
 */
export function startAgent(ns: string, args: readonly string[], opts: StartAgentOptions = {}): AgentProcess {
  if (!ns) throw new Error('startAgent needs a namespace: the agent never runs in the host namespace');
  const http = ['--healthz-bind-address', '--metrics-bind-address']
    .filter((flag) => !args.some((a) => a === flag || a.startsWith(`${flag}=`) || a === flag.slice(1) || a.startsWith(`${flag.slice(1)}=`)))
    .map((flag) => `${flag}=`);
  const child: ChildProcess = spawn('ip', ['netns', 'exec', ns, ...(opts.prefix ?? []), process.execPath, AGENT_MAIN, ...http, ...args], {
    stdio: ['ignore', opts.stdout ?? 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  return followAgent(child);
}

/**
 * Follows an agent that `child` runs (directly, or as `podman run` in the foreground): collects
 * its JSON log lines from stdout and its stderr; stop() and kill() signal `child`.
 */
export function followAgent(child: ChildProcess): AgentProcess {
  const logs: LogLine[] = [];
  const otherOutput: string[] = [];
  let stderr = '';
  let partial = '';
  let exitInfo: ExitInfo | undefined;
  type Waiter = { match: LogMatch; since: number; resolve: (l: LogLine) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };
  const waiters = new Set<Waiter>();

  const tail = (): string => `\n--- last agent log lines ---\n${logs.slice(-15).map(describeLine).join('\n')}` + (stderr ? `\n--- agent stderr ---\n${stderr.slice(-2000)}` : '');

  const onLine = (raw: string): void => {
    if (raw.trim() === '') return;
    const line = parseLine(raw);
    if (!line) {
      otherOutput.push(raw);
      return;
    }
    logs.push(line);
    for (const w of [...waiters]) {
      if (matches(w.match, line)) {
        clearTimeout(w.timer);
        waiters.delete(w);
        w.resolve(line);
      }
    }
  };

  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) onLine(p);
  });
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });

  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('close', (code, signal) => {
      if (partial !== '') onLine(partial);
      partial = '';
      exitInfo = { code, signal };
      for (const w of [...waiters]) {
        clearTimeout(w.timer);
        waiters.delete(w);
        w.reject(new Error(`the agent exited (code ${code}, signal ${signal}) before logging what the test waited for${tail()}`));
      }
      resolve(exitInfo);
    });
  });

  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start the agent process');

  return {
    pid,
    logs,
    otherOutput,
    stderr: () => stderr,
    mark: () => logs.length,
    matching: (match, since = 0) => logs.slice(since).filter((l) => matches(match, l)),
    waitForLog(match, { since = 0, timeoutMs = 15_000 } = {}) {
      const found = logs.slice(since).find((l) => matches(match, l));
      if (found) return Promise.resolve(found);
      if (exitInfo) {
        return Promise.reject(new Error(`the agent already exited (code ${exitInfo.code}) without logging what the test waits for${tail()}`));
      }
      return new Promise<LogLine>((resolve, reject) => {
        const w: Waiter = {
          match,
          since,
          resolve,
          reject,
          timer: setTimeout(() => {
            waiters.delete(w);
            reject(new Error(`no matching agent log line within ${timeoutMs} ms (${typeof match === 'string' ? JSON.stringify(match) : 'predicate'})${tail()}`));
          }, timeoutMs),
        };
        waiters.add(w);
      });
    },
    signal: (sig) => void child.kill(sig),
    exited,
    async stop(timeoutMs = 10_000) {
      if (exitInfo) return { ...exitInfo, elapsedMs: 0 };
      const started = performance.now();
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      const r = await Promise.race([exited, bound]);
      clearTimeout(timer);
      const elapsedMs = performance.now() - started;
      if (r === 'timeout') {
        child.kill('SIGKILL');
        await exited;
        throw new Error(`the agent did not exit within ${timeoutMs} ms of SIGTERM${tail()}`);
      }
      return { ...r, elapsedMs };
    },
    async kill() {
      if (exitInfo) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Runs the agent to completion inside `ns` (for flags that exit at once: usage errors, --help). */
export function runAgentToExit(ns: string, args: readonly string[], timeoutMs = 15_000): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, AGENT_MAIN, ...args], { encoding: 'utf8', timeout: timeoutMs });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** A config directory laid out as kubelet mounts a ConfigMap volume. */
export interface ConfigMapDir {
  /** The mounted directory. */
  readonly dir: string;
  /** `<dir>/ip-masq-agent`, the visible link to pass as `--config`. */
  readonly file: string;
  /**
   * Publishes new content as kubelet's atomic writer does: a new timestamped dir, a `..data_tmp`
   * link renamed over `..data`, then the old dir removed. Returns Date.now() right after the
   * rename (the clock the agent stamps log lines with), the moment the new content became visible.
   */
  write(text: string): number;
  /** Deletes the directory. */
  cleanup(): void;
}

/** Creates an empty kubelet-style ConfigMap directory in a temp dir (no content until write). */
export function createConfigMapDir(): ConfigMapDir {
  const dir = mkdtempSync(join(tmpdir(), 'ima-agent-cm-'));
  const file = join(dir, 'ip-masq-agent');
  let n = 0;
  let current: string | undefined;
  return {
    dir,
    file,
    write(text) {
      n++;
      const ts = `..2026_11_26_10_00_${String(n % 60).padStart(2, '0')}.${String(n).padStart(9, '0')}`;
      mkdirSync(join(dir, ts));
      writeFileSync(join(dir, ts, 'ip-masq-agent'), text);
      symlinkSync(ts, join(dir, '..data_tmp'));
      renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
      const at = Date.now();
      if (current === undefined) symlinkSync('..data/ip-masq-agent', file);
      else rmSync(join(dir, current), { recursive: true, force: true });
      current = ts;
      return at;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** A private xtables lock file, so legacy iptables never waits for (or holds) the machine's lock. */
export interface PrivateLock {
  readonly file: string;
  /** `{ XTABLES_LOCKFILE: file }`, for the agent's and helpers' environment. */
  readonly env: Readonly<Record<string, string>>;
  cleanup(): void;
}

/** Creates a private xtables lock file in a temp dir. */
export function createPrivateLock(): PrivateLock {
  const dir = mkdtempSync(join(tmpdir(), 'ima-agent-xtables-'));
  const file = join(dir, 'xtables.lock');
  writeFileSync(file, '');
  return { file, env: { XTABLES_LOCKFILE: file }, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The live descendants of a process: the commands the agent runs at the moment and whatever they started. */
export function descendants(pid: number): number[] {
  const found: number[] = [];
  const visit = (parent: number): void => {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${parent}/task`);
    } catch {
      return;
    }
    for (const task of tasks) {
      let kids: string;
      try {
        kids = readFileSync(`/proc/${parent}/task/${task}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const kid of kids.split(' ').filter(Boolean)) {
        found.push(Number(kid));
        visit(Number(kid));
      }
    }
  };
  visit(pid);
  return found;
}

/** utime, stime, cutime and cstime of a process (fields 14-17 of /proc/<pid>/stat), or zeros once it is gone. */
function statTicks(pid: number): readonly [number, number, number, number] {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return [0, 0, 0, 0];
  }
  // Fields after the parenthesised command name start at field 3.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [Number(f[11]), Number(f[12]), Number(f[13]), Number(f[14])];
}

/**
 * CPU ticks of a process: its own (utime + stime) and its children's: the reaped ones (cutime +
 * cstime) and the live ones with all they reaped, so a command still running counts as the agent's
 * child too.
 */
export function cpuTicks(pid: number): { readonly self: number; readonly children: number } {
  const [u, s, cu, cs] = statTicks(pid);
  let children = cu + cs;
  for (const d of descendants(pid)) children += statTicks(d).reduce((a, b) => a + b, 0);
  return { self: u + s, children };
}

/**
 * Resident memory in KiB of a process (VmRSS) and of its live descendants (the agent and the
 * commands it runs at the moment): of a descendant only the pages it does not share (Private_Clean + Private_Dirty),
 * since the shared ones (libc, mapped by the agent too) are in memory once.
 */
export function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  let kib = Number(m[1]);
  for (const d of descendants(pid)) {
    let rollup: string;
    try {
      rollup = readFileSync(`/proc/${d}/smaps_rollup`, 'utf8');
    } catch {
      continue;
    }
    for (const field of ['Private_Clean', 'Private_Dirty']) kib += Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0);
  }
  return kib;
}
