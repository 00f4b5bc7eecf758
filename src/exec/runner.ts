import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { CommandError, errorMessage, type CommandFailure } from '../errors.js';
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
}

/** Runs an argv. The only way the project starts processes; an argv is never parsed by a shell. */
export type Runner = (argv: readonly string[], options?: RunOptions) => Promise<CommandResult>;

/** What a person can do about a permission failure; the kernel's words alone suggest `sudo`. */
export const PERMISSION_HINT = 'needs CAP_NET_ADMIN: run it as root, or in a container or pod granted NET_ADMIN';

/** The real runner, plus what the process needs at exit (killAll). */
export type ProcessRunner = ReturnType<typeof createRunner>;

/** The child-process start function; injected by tests to reproduce failures a real spawn rarely gives. */
export type SpawnFn = (file: string, args: readonly string[], options: SpawnOptions) => ChildProcess;

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
  // as if the lock were busy would only hide the real cause. iptables: "Permission denied (you must
  // be root)"; nft: "Operation not permitted".
  if (/Permission denied \(you must be root\)|Operation not permitted/i.test(stderr)) return 'permission-denied';
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

/** What a tool printed on stderr: a CommandError, or the result of a command whose exit code was allowed. */
export type ToolSaid = Pick<CommandResult, 'stderr'>;

// The finer classes below are asked by the backends; `failure` keeps the labels operators read in
// logs. Every match on a tool's stderr is here, beside classifyFailure.

/** iptables: the chain named does not exist (`-S`, `-F`, `-X` of a missing chain exit 1 with it). */
export function isChainMissing(r: ToolSaid): boolean {
  return /No chain\/target\/match by that name/.test(r.stderr);
}

/** iptables-nft 1.8.9: `-S` of a missing chain calls it incompatible (a -C probe tells it from a really foreign chain). */
export function isChainIncompatible(r: ToolSaid): boolean {
  return /in table `nat' is incompatible/.test(r.stderr);
}

/** iptables: `-C ... -j CHAIN` exited 2 because the jump target does not exist (nft / legacy wording). */
export function isTargetMissing(r: ToolSaid): boolean {
  return /Chain '[^']*' does not exist|Couldn't load target/.test(r.stderr);
}

/** iptables: `-X` of a chain that a rule still jumps to (nft / legacy wording). */
export function isChainInUse(r: ToolSaid): boolean {
  return /Device or resource busy|Too many links/.test(r.stderr);
}

/** nft: the table (or another object) named does not exist. */
export function isNftObjectMissing(r: ToolSaid): boolean {
  return /No such file or directory/.test(r.stderr);
}

/** iptables-restore: the 1-based payload line it refused, when it named one. */
export function restoreFailedLine(r: ToolSaid): number | undefined {
  const m = /Error occurred at line: (\d+)|line (\d+) failed/.exec(r.stderr);
  return m ? Number(m[1] ?? m[2]) : undefined;
}

/** conntrack -D: how many entries it deleted ("N flow entries have been deleted"; exit 1 when N is 0). */
export function conntrackDeleted(r: ToolSaid): number | undefined {
  const m = /(\d+) flow entries have been deleted/.exec(r.stderr);
  return m ? Number(m[1]) : undefined;
}

/** What iptables said, on one line and cut short: its messages without the "Try `iptables -h'" boilerplate. */
export const saidByIptables = (stderr: string): string => quoteStderr(stderr, /^(Try `|Error occurred at line)/);

/** Whether an error's message or stderr speaks of missing privileges (more loosely than 'permission-denied'). */
export function mentionsPermission(e: unknown): boolean {
  const message = errorMessage(e);
  const stderr = e instanceof CommandError ? e.stderr : '';
  return /Permission denied|Operation not permitted|must be root/i.test(`${message}\n${stderr}`);
}

/** Errno codes of a spawn that failed for want of descriptors, processes or memory. */
const RESOURCE_CODES = new Set(['EMFILE', 'ENFILE', 'EAGAIN', 'ENOMEM']);

/** Every failure message has this shape: the command, then what happened (foreign text quoted short). */
function failureMessage(argv: readonly string[], detail: string): string {
  return `${argv.join(' ')}: ${detail}`;
}

/** The first three non-blank lines a tool printed on stderr (less those `omit` matches), on one line and at most EXCERPT_MAX_BYTES long. */
function quoteStderr(stderr: string, omit?: RegExp): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !omit?.test(l));
  return cutExcerpt(lines.slice(0, 3).join(' | '));
}

/** A start that failed (thrown by spawn or emitted by the child or one of its pipes) as a CommandError. */
function spawnFailure(argv: readonly string[], e: unknown): CommandError {
  const file = argv[0] ?? '';
  const code = (e as NodeJS.ErrnoException | undefined)?.code ?? '';
  if (code === 'ENOENT') return new CommandError(argv, null, '', 'not-installed', failureMessage(argv, `${file} is not installed (not found in PATH)`));
  const resource = RESOURCE_CODES.has(code) ? `${code} (out of file descriptors, processes or memory; see the open connections and the nofile limit): ` : '';
  return new CommandError(argv, null, '', resource ? 'resource' : 'other', failureMessage(argv, `cannot start ${file}: ${resource}${cutExcerpt(errorMessage(e))}`));
}

/** Keeps the first `limit` bytes of a stream and counts the rest. */
class Capture {
  private readonly chunks: Buffer[] = [];
  /** Every byte seen, kept or not. */
  total = 0;
  constructor(private readonly limit: number) {}
  push(chunk: Buffer): void {
    if (this.total < this.limit) this.chunks.push(chunk.subarray(0, this.limit - this.total));
    this.total += chunk.length;
  }
  /** The kept text, marked when something was left out. */
  text(): string {
    const head = Buffer.concat(this.chunks).toString('utf8');
    return this.total > this.limit ? `${head}\n[... ${this.total - this.limit} more bytes not kept]` : head;
  }
}

/**
 * Creates the real runner, backed by node:child_process.spawn. Each command runs in its own process
 * group (`detached`), so a deadline kills it and everything it started (a wrapper script's
 * `iptables-restore`, a sleeper holding its pipes), and the promise settles at the deadline at the
 * latest. Output is bounded (STDERR_KEEP_BYTES, STDOUT_MAX_BYTES). Every failure, including a
 * spawn that cannot get descriptors, rejects with a CommandError; nothing is left to an
 * unhandled 'error' event. `defaults.timeoutMs` is for commands whose caller gives none; tests pass `spawn`.
 */
export function createRunner(defaults: { readonly timeoutMs?: number; readonly spawn?: SpawnFn } = {}) {
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

  const run: Runner = (argv, options = {}) => {
    if (argv[0] === undefined) return Promise.reject(new CommandError(argv, null, '', 'other', 'empty command'));
    const timeoutMs = options.timeoutMs ?? defaults.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    // Only the runner's own default comes from --command-timeout; callers' limits are fixed.
    const limitFlag = options.timeoutMs === undefined ? ' (--command-timeout)' : '';
    return new Promise((resolve, reject) => {
      const ok = options.okExitCodes ?? [0];
      const maxStdout = options.maxStdoutBytes ?? STDOUT_MAX_BYTES;
      const out = new Capture(maxStdout);
      const err = new Capture(STDERR_KEEP_BYTES);
      let child: ChildProcess;
      let settled = false;
      let exited: { readonly code: number | null; readonly signal: NodeJS.Signals | null } | undefined;
      const started = performance.now();
      /** This command's CommandError: how it ended, what it said on stderr, how long it ran. */
      const failed = (failure: CommandFailure, detail: string, code: number | null = null, signal: NodeJS.Signals | null = 'SIGKILL', stderr = err.text()): CommandError =>
        new CommandError(argv, code, stderr, failure, failureMessage(argv, detail), { signal, durationMs: performance.now() - started });

      /** Settles once; whatever fires later (close, a pipe error) finds `settled` and does nothing. */
      const finish = (outcome: CommandError | CommandResult, kill: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (child.pid !== undefined) running.delete(child.pid);
        if (kill) {
          killGroup(child.pid);
          // Stop waiting for pipes that a surviving process might hold (e.g. in another group).
          for (const pipe of [child.stdin, child.stdout, child.stderr]) pipe?.destroy();
        }
        if (outcome instanceof CommandError) reject(outcome);
        else resolve(outcome);
      };

      try {
        child = spawnFn(argv[0]!, argv.slice(1), {
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

      const timer = setTimeout(() => {
        const limit = timeoutMs >= 1000 ? `${timeoutMs / 1000}s` : `${timeoutMs}ms`;
        const how = exited ? `exited (${exited.signal ?? `exit code ${exited.code}`}) but a process it started kept its output open past the ${limit} limit` : `timed out after ${limit}`;
        finish(failed('timeout', `${how}; killed its process group${limitFlag}`, exited?.code, exited?.signal ?? 'SIGKILL'), true);
      }, timeoutMs);

      child.stdout?.on('data', (d: Buffer) => {
        out.push(d);
        if (out.total > maxStdout) finish(failed('other', `printed more than ${maxStdout} bytes on stdout; stopped it (output limit)`), true);
      });
      child.stderr?.on('data', (d: Buffer) => err.push(d));
      child.on('exit', (code, signal) => {
        exited = { code, signal };
      });
      child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
        // A negative code is a spawn failure; its 'error' event has settled the promise already.
        if (code !== null && code < 0) return;
        if (code !== null && ok.includes(code)) return finish({ stdout: out.text(), stderr: err.text(), exitCode: code }, false);
        const why = signal ? `killed by ${signal}` : `exit code ${code}`;
        const stderr = err.text();
        const said = quoteStderr(stderr);
        const failure = classifyFailure(code, stderr);
        const hint = failure === 'permission-denied' ? ` (${PERMISSION_HINT})` : '';
        finish(failed(failure, `${said ? `${why}: ${said}` : why}${hint}`, code, signal, stderr), false);
      });
      child.stdin?.end(options.input ?? '');
    });
  };

  return Object.assign(run, {
    /** Kills the process group of every command still running (call it when the agent exits). */
    killAll: () => {
      for (const pid of running) killGroup(pid);
      running.clear();
    },
  });
}
