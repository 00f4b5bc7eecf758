import { spawn } from 'node:child_process';
import { CommandError, type CommandFailure } from '../errors.js';

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
  /** Kill the child (SIGKILL) past this many milliseconds. Default 30 s. */
  readonly timeoutMs?: number;
  /** Exit codes that are answers, not failures (e.g. 1 for `iptables -C`). Default [0]. */
  readonly okExitCodes?: readonly number[];
  /** Extra environment variables for the child. */
  readonly env?: Readonly<Record<string, string>>;
}

/** Runs an argv (never through a shell). The only way the project starts processes. */
export type Runner = (argv: readonly string[], options?: RunOptions) => Promise<CommandResult>;

// iptables: "Permission denied (you must be root)"; nft: "Operation not permitted".
const PERMISSION_DENIED = /Permission denied \(you must be root\)|Operation not permitted/i;

/** What a person can do about a permission failure; the kernel's words alone suggest `sudo`. */
export const PERMISSION_HINT = 'needs CAP_NET_ADMIN: run it as root, or in a container or pod granted NET_ADMIN';

/** Classifies a failure from its exit code and stderr, so callers can retry or explain. */
export function classifyFailure(exitCode: number | null, stderr: string): CommandFailure {
  // Checked before exit code 4: iptables-nft without CAP_NET_ADMIN exits 4 too, and retrying
  // as if the lock were busy would only hide the real cause.
  if (PERMISSION_DENIED.test(stderr)) return 'permission-denied';
  if (/holding the xtables lock|Resource temporarily unavailable|another app is currently holding/i.test(stderr)) {
    return 'lock-busy';
  }
  if (exitCode === 4) return 'lock-busy';
  if (/No chain\/target\/match by that name|does not exist|No such file or directory|Could not process rule: No such/i.test(stderr)) {
    return 'not-found';
  }
  return 'other';
}

function shortMessage(argv: readonly string[], detail: string): string {
  return `${argv.join(' ')}: ${detail}`;
}

/** Creates the real runner, backed by node:child_process.spawn. */
export function createRunner(defaults: { timeoutMs?: number } = {}): Runner {
  return (argv, options = {}) =>
    new Promise((resolve, reject) => {
      const [file, ...args] = argv;
      if (file === undefined) {
        reject(new CommandError(argv, null, '', 'other', 'empty command'));
        return;
      }
      const timeoutMs = options.timeoutMs ?? defaults.timeoutMs ?? 30_000;
      const ok = options.okExitCodes ?? [0];
      const child = spawn(file, args, {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: options.env ? { ...process.env, ...options.env } : process.env,
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, timeoutMs);
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      child.stdin.on('error', () => {
        /* the child may exit before reading its input; the exit code tells what happened */
      });
      child.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const failure: CommandFailure = e.code === 'ENOENT' ? 'not-installed' : 'other';
        const detail = e.code === 'ENOENT' ? `${file} is not installed (not found in PATH)` : e.message;
        reject(new CommandError(argv, null, '', failure, shortMessage(argv, detail)));
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        const stdout = Buffer.concat(out).toString('utf8');
        const stderr = Buffer.concat(err).toString('utf8');
        if (timedOut) {
          reject(new CommandError(argv, code, stderr, 'timeout', shortMessage(argv, `killed after ${timeoutMs} ms`)));
          return;
        }
        const exitCode = code ?? 128;
        if (code === null || !ok.includes(exitCode)) {
          const why = signal ? `killed by ${signal}` : `exit code ${exitCode}`;
          const said = stderr.trim().split('\n').slice(0, 3).join(' | ');
          const failure = classifyFailure(code, stderr);
          const hint = failure === 'permission-denied' ? ` (${PERMISSION_HINT})` : '';
          reject(new CommandError(argv, code, stderr, failure, shortMessage(argv, `${said ? `${why}: ${said}` : why}${hint}`)));
          return;
        }
        resolve({ stdout, stderr, exitCode });
      });
      child.stdin.end(options.input ?? '');
    });
}
