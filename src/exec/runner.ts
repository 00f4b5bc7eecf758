import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { delimiter, join } from 'node:path';
import { CommandError, type CommandFailure } from '../errors.js';
import { cutExcerpt } from '../excerpt.js';

/** What a finished command printed and how it exited. */
export interface CommandResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

/** Options for one command. */
export interface RunOptions {
  /** Written to the child's stdin, then stdin is closed. */
  readonly input?: string;
  /** Kill the child's whole process group (SIGKILL) past this many milliseconds. Default 30 s. */
  readonly timeoutMs?: number;
  /** Exit codes that are answers, not failures (e.g. 1 for `iptables -C`). Default [0]. */
  readonly okExitCodes?: readonly number[];
  /** Extra environment variables for the child. */
  readonly env?: Readonly<Record<string, string>>;
  /** Fail (and kill the command) once it prints more than this on stdout. Default STDOUT_MAX_BYTES. */
  readonly maxStdoutBytes?: number;
  /** Keep at most this much of stderr (the head); the rest is counted, not kept. Default STDERR_KEEP_BYTES. */
  readonly maxStderrBytes?: number;
}

/**
 * Runs an argv. The only way the project starts processes. An argv is never parsed by a shell:
 * where a command shell starts it (RunnerOptions.shell), each word is passed single-quoted.
 */
export type Runner = (argv: readonly string[], options?: RunOptions) => Promise<CommandResult>;

// iptables: "Permission denied (you must be root)"; nft: "Operation not permitted".
const PERMISSION_DENIED = /Permission denied \(you must be root\)|Operation not permitted/i;

/** What a person can do about a permission failure; the kernel's words alone suggest `sudo`. */
export const PERMISSION_HINT = 'needs CAP_NET_ADMIN: run it as root, or in a container or pod granted NET_ADMIN';

/** The real runner, plus what the process needs at exit. */
export type ProcessRunner = Runner & {
  /** Kills the process group of every command still running (call it when the agent exits). */
  readonly killAll: () => void;
};

/** The child-process start function; injected by tests to reproduce failures a real spawn rarely gives. */
export type SpawnFn = (file: string, args: readonly string[], options: SpawnOptions) => ChildProcess;

/** Options of createRunner. */
export interface RunnerOptions {
  /** Timeout of a command whose caller gives none. Default 30 s. */
  readonly timeoutMs?: number;
  /** Default node:child_process.spawn. */
  readonly spawn?: SpawnFn;
  /**
   * A POSIX shell (e.g. /bin/sh) kept running to start the commands that take no input and no
   * extra environment, at most SHELLS at a time. Each command is then a fork of that small shell
   * instead of one of this process: at 50 MiB resident a spawn costs the agent about 1.5 ms of CPU
   * and more as it grows, a command started by the shell about 0.1 ms (docs/performance.md).
   * Unset: every command is spawned.
   */
  readonly shell?: string;
}

/** How many command shells run at most: the read-back of a sync runs two listings side by side. */
export const SHELLS = 2;

/** The command timeout when neither the caller nor the runner says otherwise. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;

/** How much of a command's stderr is kept: enough for any real error, never a whole flood. */
export const STDERR_KEEP_BYTES = 64 * 1024;

/**
 * The most a command may print on stdout. Legitimate reads are far below it: with 100,000 ranges,
 * `iptables -S` of our chain prints 12.6 MB and `nft -j list table` of our table 4.8 MB (measured;
 * docs/troubleshooting.md, "When a sync fails"); beyond it the output is not ours to parse.
 */
export const STDOUT_MAX_BYTES = 64 * 1024 * 1024;

/** Classifies a failure from its exit code and stderr, so callers can retry or explain. */
export function classifyFailure(exitCode: number | null, stderr: string): CommandFailure {
  // Checked before exit code 4: iptables-nft without CAP_NET_ADMIN exits 4 too, and retrying
  // as if the lock were busy would only hide the real cause.
  if (PERMISSION_DENIED.test(stderr)) return 'permission-denied';
  if (/holding the xtables lock|Resource temporarily unavailable|another app is currently holding/i.test(stderr)) {
    return 'lock-busy';
  }
  // iptables-nft exits 4 also when the kernel refuses, e.g. "CHAIN_DEL failed (Device or resource busy)"
  // for a chain a rule still jumps to: that is no lock problem.
  if (exitCode === 4 && !/Device or resource busy| failed \(/i.test(stderr)) return 'lock-busy';
  if (/No chain\/target\/match by that name|does not exist|No such file or directory|Could not process rule: No such/i.test(stderr)) {
    return 'not-found';
  }
  return 'other';
}

/** Errno codes of a spawn that failed for want of descriptors, processes or memory. */
const RESOURCE_CODES = new Set(['EMFILE', 'ENFILE', 'EAGAIN', 'ENOMEM']);

/** `30s`, `1.5s`, `250ms`: the limit as a person reads it in a log line. */
function formatMs(ms: number): string {
  return ms >= 1000 ? `${ms / 1000}s` : `${ms}ms`;
}

/** Every failure message has this shape: the command, then what happened (foreign text quoted short). */
function failureMessage(argv: readonly string[], detail: string): string {
  return `${argv.join(' ')}: ${detail}`;
}

/** The first lines a tool printed on stderr, on one line and at most EXCERPT_MAX_BYTES long. */
function quoteStderr(stderr: string): string {
  return cutExcerpt(
    stderr
      .trim()
      .split('\n', 3)
      .map((l) => l.trim())
      .filter((l) => l !== '')
      .join(' | '),
  );
}

/** A start that failed (thrown by spawn or emitted by the child or one of its pipes) as a CommandError. */
function spawnFailure(argv: readonly string[], e: unknown): CommandError {
  const file = argv[0] ?? '';
  const code = (e as NodeJS.ErrnoException | undefined)?.code ?? '';
  const text = e instanceof Error ? e.message : String(e);
  if (code === 'ENOENT') return new CommandError(argv, null, '', 'not-installed', failureMessage(argv, `${file} is not installed (not found in PATH)`));
  if (RESOURCE_CODES.has(code)) {
    return new CommandError(
      argv,
      null,
      '',
      'resource',
      failureMessage(argv, `cannot start ${file}: ${code} (out of file descriptors, processes or memory; see the open connections and the nofile limit): ${cutExcerpt(text)}`),
    );
  }
  return new CommandError(argv, null, '', 'other', failureMessage(argv, `cannot start ${file}: ${cutExcerpt(text)}`));
}

/** A command shell that could not start, as the error of the command it was to run. */
function shellFailure(argv: readonly string[], shell: string, e: unknown): CommandError {
  const cause = spawnFailure([shell], e);
  return new CommandError(argv, null, '', cause.failure, failureMessage(argv, `cannot start the command shell: ${cause.message}`));
}

/** Keeps the first `limit` bytes of a stream and counts the rest. */
class Capture {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  /** Every byte seen, kept or not. */
  total = 0;
  constructor(private readonly limit: number) {}
  push(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.kept >= this.limit) return;
    const part = chunk.length <= this.limit - this.kept ? chunk : chunk.subarray(0, this.limit - this.kept);
    this.chunks.push(part);
    this.kept += part.length;
  }
  /** The kept text, marked when something was left out; `drop` bytes at the end of the stream are not part of it. */
  text(drop = 0): string {
    const total = this.total - drop;
    const all = Buffer.concat(this.chunks);
    const head = (total < this.kept ? all.subarray(0, total) : all).toString('utf8');
    return total > this.kept ? `${head}\n[... ${total - this.kept} more bytes not kept]` : head;
  }
}

/** How a finished command ended, whichever way it was started. */
interface Ending {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The result of a command that ended, or the CommandError that says why it is not one. */
function judge(argv: readonly string[], ok: readonly number[], e: Ending): CommandResult | CommandError {
  const exitCode = e.code ?? 128;
  if (e.code === null || !ok.includes(exitCode)) {
    const why = e.signal ? `killed by ${e.signal}` : `exit code ${exitCode}`;
    const said = quoteStderr(e.stderr);
    const failure = classifyFailure(e.code, e.stderr);
    const hint = failure === 'permission-denied' ? ` (${PERMISSION_HINT})` : '';
    return new CommandError(argv, e.code, e.stderr, failure, failureMessage(argv, `${said ? `${why}: ${said}` : why}${hint}`));
  }
  return { stdout: e.stdout, stderr: e.stderr, exitCode };
}

/** The error of a command killed at its deadline. */
function timeoutError(argv: readonly string[], timeoutMs: number, limitFlag: string, stderr: string, exited?: { code: number | null; signal: NodeJS.Signals | null }): CommandError {
  const how = exited
    ? `exited (${exited.signal ?? `exit code ${exited.code}`}) but a process it started kept its output open past the ${formatMs(timeoutMs)} limit`
    : `timed out after ${formatMs(timeoutMs)}`;
  return new CommandError(argv, exited?.code ?? null, stderr, 'timeout', failureMessage(argv, `${how}; killed its process group${limitFlag}`));
}

/** The error of a command stopped for printing too much. */
function floodError(argv: readonly string[], maxStdout: number, stderr: string): CommandError {
  return new CommandError(argv, null, stderr, 'other', failureMessage(argv, `printed more than ${maxStdout} bytes on stdout; stopped it (output limit)`));
}

/** The path a spawn would run for `file`: PATH is searched unless it names a path; undefined when nothing there can be run. */
function findProgram(file: string): string | undefined {
  const candidates = file.includes('/')
    ? [file]
    : (process.env['PATH'] ?? '')
        .split(delimiter)
        .filter((d) => d !== '')
        .map((d) => join(d, file));
  return candidates.find((path) => {
    try {
      accessSync(path, fsConstants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** A word the shell reads back exactly as given. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** Signal names by number, to read a shell's `$?` of 128 + n as node reports a killed child. */
const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(Object.entries(osConstants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

/** One command handed to a command shell. */
interface ShellJob {
  readonly argv: readonly string[];
  /** The line the shell runs: the command, then the end markers with its status. */
  readonly line: string;
  readonly ok: readonly number[];
  readonly maxStdout: number;
  readonly out: Capture;
  readonly err: Capture;
  /** Bytes of the start marker not seen yet: until it is whole, the shell may have died before running the command. */
  unstarted: number;
  /** Shells it was handed to. */
  tries: number;
  /** The command's `$?` once stdout's end marker arrived. */
  status?: number;
  /** Whether stderr's end marker arrived. */
  errEnded: boolean;
  settle(outcome: CommandError | CommandResult): void;
}

/** A running command shell and the command it runs now, if any. */
interface Shell {
  readonly child: ChildProcess;
  job: ShellJob | undefined;
  /** The last bytes of each stream, where an end marker is looked for. */
  outTail: string;
  errTail: string;
}

/**
 * Creates the real runner, backed by node:child_process.spawn. Each command runs in its own process
 * group (`detached`), so a deadline kills it and everything it started (a wrapper script's
 * `iptables-restore`, a sleeper holding its pipes), and the promise settles at the deadline at the
 * latest. Output is bounded (STDERR_KEEP_BYTES, STDOUT_MAX_BYTES). Every failure, including a
 * spawn that cannot get descriptors, rejects with a CommandError; nothing is left to an
 * unhandled 'error' event.
 *
 * With `shell`, commands without input or environment are started by a command shell instead
 * (see RunnerOptions.shell). A command's deadline, output limit or killAll kills the shell's whole
 * group, the command with it, and the next command starts a new shell. A process such a command
 * leaves running in the background lives until then; the look-only commands of iptables and nft
 * leave none.
 */
export function createRunner(defaults: RunnerOptions = {}): ProcessRunner {
  const spawnFn: SpawnFn = defaults.spawn ?? ((file, args, options) => spawn(file, args, options));
  /** Process groups of commands not settled yet, for killAll. */
  const running = new Set<number>();
  const killGroup = (pid: number | undefined): void => {
    if (pid === undefined) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* the whole group has exited already */
    }
  };

  const spawned = (argv: readonly string[], file: string, args: readonly string[], options: RunOptions, timeoutMs: number, limitFlag: string): Promise<CommandResult> =>
    new Promise((resolve, reject) => {
      const ok = options.okExitCodes ?? [0];
      const maxStdout = options.maxStdoutBytes ?? STDOUT_MAX_BYTES;
      const out = new Capture(maxStdout);
      const err = new Capture(options.maxStderrBytes ?? STDERR_KEEP_BYTES);
      let child: ChildProcess;
      let settled = false;
      let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;

      /** Settles once; whatever fires later (close, a pipe error) finds `settled` and does nothing. */
      const finish = (outcome: CommandError | CommandResult, kill: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (child.pid !== undefined) running.delete(child.pid);
        if (kill) {
          killGroup(child.pid);
          // Stop waiting for pipes that a surviving process might hold (e.g. in another group).
          child.stdin?.destroy();
          child.stdout?.destroy();
          child.stderr?.destroy();
        }
        if (outcome instanceof CommandError) reject(outcome);
        else resolve(outcome);
      };

      try {
        child = spawnFn(file, args, {
          stdio: ['pipe', 'pipe', 'pipe'],
          env: options.env ? { ...process.env, ...options.env } : process.env,
          // Its own process group: one kill reaches whatever the command started.
          detached: true,
        });
      } catch (e) {
        reject(spawnFailure(argv, e));
        return;
      }
      // Listeners first: with EMFILE node emits 'error' on the next tick and leaves the pipes null.
      child.on('error', (e: Error) => finish(spawnFailure(argv, e), true));
      const pipeError = (e: Error): void => finish(spawnFailure(argv, e), true);
      child.stdout?.on('error', pipeError);
      child.stderr?.on('error', pipeError);
      child.stdin?.on('error', () => {
        /* the child may exit before reading its input; the exit code tells what happened */
      });
      if (child.pid !== undefined) running.add(child.pid);

      const timer = setTimeout(() => finish(timeoutError(argv, timeoutMs, limitFlag, err.text(), exited), true), timeoutMs);

      child.stdout?.on('data', (d: Buffer) => {
        out.push(d);
        if (out.total > maxStdout) finish(floodError(argv, maxStdout, err.text()), true);
      });
      child.stderr?.on('data', (d: Buffer) => err.push(d));
      child.on('exit', (code, signal) => {
        exited = { code, signal };
      });
      child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
        // A negative code is a spawn failure; its 'error' event has settled the promise already.
        if (code !== null && code < 0) return;
        finish(judge(argv, ok, { code, signal, stdout: out.text(), stderr: err.text() }), false);
      });
      child.stdin?.end(options.input ?? '');
    });

  // The command shells. The shell prints a line with this nonce before each command, and marks the
  // command's end on both streams with it: no output contains it by chance.
  const nonce = randomBytes(16).toString('hex');
  const outEnd = new RegExp(`\\n${nonce} (\\d+)\\n$`);
  const errEnd = `\n${nonce}\n`;
  const startMark = `${nonce}\n`;
  const MARK_MAX = nonce.length + 16;
  /** The command shell, if one is asked for and can be run. */
  const shellPath = defaults.shell !== undefined && findProgram(defaults.shell) !== undefined ? defaults.shell : undefined;
  const shells: Shell[] = [];
  /** Where each program run through a shell was found (findProgram): a sync runs the same two. */
  const programs = new Map<string, string>();
  const waiting: ShellJob[] = [];

  /** Kills a shell and forgets it; returns the command it was running, now without a shell. */
  const dropShell = (shell: Shell): ShellJob | undefined => {
    const job = shell.job;
    shell.job = undefined;
    const i = shells.indexOf(shell);
    if (i >= 0) shells.splice(i, 1);
    running.delete(shell.child.pid ?? -1);
    killGroup(shell.child.pid);
    shell.child.stdin?.destroy();
    shell.child.stdout?.destroy();
    shell.child.stderr?.destroy();
    return job;
  };

  /** The last MARK_MAX bytes of a stream, where an end marker is looked for, after chunk `d`. */
  const keepTail = (tail: string, d: Buffer): string => (tail + d.toString('latin1', Math.max(0, d.length - MARK_MAX))).slice(-MARK_MAX);

  /** Settles the shell's job if both its end markers have arrived. */
  const maybeDone = (shell: Shell): void => {
    const job = shell.job;
    if (!job || job.status === undefined || !job.errEnded) return;
    shell.job = undefined;
    const marked = `\n${nonce} ${job.status}\n`.length;
    const stdout = job.out.text(marked);
    const stderr = job.err.text(errEnd.length);
    if (job.out.total - marked > job.maxStdout) {
      job.settle(floodError(job.argv, job.maxStdout, stderr));
    } else {
      const signal = job.status > 128 ? SIGNAL_NAMES.get(job.status - 128) : undefined;
      job.settle(judge(job.argv, job.ok, signal ? { code: null, signal, stdout, stderr } : { code: job.status, signal: null, stdout, stderr }));
    }
    pump();
  };

  const startShell = (file: string): Shell => {
    const child = spawnFn(file, [], { stdio: ['pipe', 'pipe', 'pipe'], env: process.env, detached: true });
    const shell: Shell = { child, job: undefined, outTail: '', errTail: '' };
    const lost = (why: string): void => {
      const job = dropShell(shell);
      // A shell that died before it started the command (killed while idle) did no harm: the
      // command goes to another shell, a new one at the latest after every shell there was. One
      // that died later may have run it, which must not repeat.
      if (job && job.unstarted > 0 && job.tries <= SHELLS) waiting.unshift(job);
      else job?.settle(new CommandError(job.argv, null, job.err.text(), 'other', failureMessage(job.argv, why)));
      pump();
    };
    child.on('error', (e: Error) => {
      const job = dropShell(shell);
      job?.settle(shellFailure(job.argv, file, e));
      pump();
    });
    child.stdout?.on('error', (e: Error) => lost(`the command shell's output failed: ${cutExcerpt(e.message)}`));
    child.stderr?.on('error', (e: Error) => lost(`the command shell's output failed: ${cutExcerpt(e.message)}`));
    child.stdin?.on('error', () => {
      /* a shell that died is reported by 'close' */
    });
    child.on('close', (code, signal) => {
      if (!shells.includes(shell)) return;
      lost(signal ? `killed by ${signal}, with the command shell ${file} that ran it` : `the command shell ${file} that ran it exited (exit code ${code})`);
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      const job = shell.job;
      if (!job) return;
      const skip = Math.min(job.unstarted, chunk.length);
      job.unstarted -= skip;
      const d = chunk.subarray(skip);
      if (d.length === 0) return;
      job.out.push(d);
      shell.outTail = keepTail(shell.outTail, d);
      if (job.out.total > job.maxStdout + MARK_MAX) {
        dropShell(shell);
        job.settle(floodError(job.argv, job.maxStdout, job.err.text()));
        pump();
        return;
      }
      const m = outEnd.exec(shell.outTail);
      if (m) {
        job.status = Number(m[1]);
        maybeDone(shell);
      }
    });
    child.stderr?.on('data', (d: Buffer) => {
      const job = shell.job;
      if (!job) return;
      job.err.push(d);
      shell.errTail = keepTail(shell.errTail, d);
      if (shell.errTail.endsWith(errEnd)) {
        job.errEnded = true;
        maybeDone(shell);
      }
    });
    // An idle shell must not keep the process alive; a command's deadline timer does while it runs.
    for (const handle of [child, child.stdin, child.stdout, child.stderr] as ({ unref?: () => void } | null)[]) handle?.unref?.();
    if (child.pid !== undefined) running.add(child.pid);
    shells.push(shell);
    return shell;
  };

  /** Hands waiting commands to idle shells, starting shells up to SHELLS. */
  const pump = (): void => {
    while (waiting.length > 0) {
      let shell = shells.find((s) => s.job === undefined);
      if (!shell && shells.length < SHELLS && shellPath !== undefined) {
        try {
          shell = startShell(shellPath);
        } catch (e) {
          const job = waiting.shift();
          job?.settle(shellFailure(job.argv, shellPath, e));
          continue;
        }
      }
      if (!shell) return;
      const job = waiting.shift();
      if (!job) return;
      job.tries++;
      job.unstarted = startMark.length;
      shell.job = job;
      shell.outTail = '';
      shell.errTail = '';
      shell.child.stdin?.write(job.line);
    }
  };

  const viaShell = (argv: readonly string[], path: string, options: RunOptions, timeoutMs: number, limitFlag: string): Promise<CommandResult> =>
    new Promise((resolve, reject) => {
      let settled = false;
      const words = [path, ...argv.slice(1)].map(shellQuote).join(' ');
      const job: ShellJob = {
        argv,
        line: `echo ${nonce}; ${words} </dev/null; printf '\\n%s %d\\n' ${nonce} $?; printf '\\n%s\\n' ${nonce} >&2\n`,
        ok: options.okExitCodes ?? [0],
        maxStdout: options.maxStdoutBytes ?? STDOUT_MAX_BYTES,
        out: new Capture((options.maxStdoutBytes ?? STDOUT_MAX_BYTES) + MARK_MAX),
        err: new Capture(options.maxStderrBytes ?? STDERR_KEEP_BYTES),
        errEnded: false,
        unstarted: startMark.length,
        tries: 0,
        settle(outcome) {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (outcome instanceof CommandError) reject(outcome);
          else resolve(outcome);
        },
      };
      const timer = setTimeout(() => {
        const at = waiting.indexOf(job);
        if (at >= 0) waiting.splice(at, 1);
        const shell = shells.find((s) => s.job === job);
        if (shell) dropShell(shell);
        job.settle(timeoutError(argv, timeoutMs, limitFlag, job.err.text()));
        pump();
      }, timeoutMs);
      waiting.push(job);
      pump();
    });

  const run: Runner = (argv, options = {}) => {
    const [file, ...args] = argv;
    if (file === undefined) return Promise.reject(new CommandError(argv, null, '', 'other', 'empty command'));
    const timeoutMs = options.timeoutMs ?? defaults.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    // Only the runner's own default comes from --command-timeout; callers' limits are fixed.
    const limitFlag = options.timeoutMs === undefined ? ' (--command-timeout)' : '';
    if (shellPath === undefined || options.input !== undefined || options.env !== undefined) return spawned(argv, file, args, options, timeoutMs, limitFlag);
    const path = programs.get(file) ?? findProgram(file);
    if (path === undefined) return Promise.reject(spawnFailure(argv, Object.assign(new Error(`spawn ${file} ENOENT`), { code: 'ENOENT' })));
    programs.set(file, path);
    const result = viaShell(argv, path, options, timeoutMs, limitFlag);
    // The shell's "not found": the program went away; look it up again next time.
    result.catch((e: unknown) => {
      if (e instanceof CommandError && e.exitCode === 127) programs.delete(file);
    });
    return result;
  };

  return Object.assign(run, {
    killAll: () => {
      for (const pid of running) killGroup(pid);
      running.clear();
    },
  });
}
