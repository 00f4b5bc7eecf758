// Shared by the CLI tests: captured stdout/stderr, throwaway config files, a runner that fails
// the test if a command touches anything, and the golden folder of the CLI's own output.
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CommandDeps } from '../../src/cli/command.js';
import { runOperatorCommand } from '../../src/cli/index.js';
import type { Runner } from '../../src/exec/runner.js';

/** What a command printed and how it exited. */
export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A runner that refuses every command: proof that a command ran nothing. */
export const forbiddenRunner: Runner = async (argv) => {
  throw new Error(`this command must not run anything, but ran: ${argv.join(' ')}`);
};

/** Runs `ip-masq-agent <argv>` in-process through the same dispatch main uses. */
export async function cli(argv: readonly string[], deps: Partial<CommandDeps> & Record<string, unknown> = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const io = { stdout: (s: string) => void (stdout += s), stderr: (s: string) => void (stderr += s) };
  const code = await runOperatorCommand(argv, io, { runner: forbiddenRunner, ...deps });
  return { code, stdout, stderr };
}

/** A temporary directory for config files; remove() deletes it. */
export interface TempDir {
  readonly dir: string;
  /** Writes `text` to `name` inside the directory (creating sub-directories) and returns the path. */
  write(name: string, text: string): Promise<string>;
  remove(): Promise<void>;
}

/** Creates a temporary directory for one test file. */
export async function tempDir(): Promise<TempDir> {
  const dir = await mkdtemp(join(tmpdir(), 'ip-masq-cli-test-'));
  return {
    dir,
    async write(name, text) {
      const path = join(dir, name);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, text);
      return path;
    },
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Whether this run rewrites golden files instead of comparing with them. */
export const UPDATE_GOLDEN = process.env['UPDATE_GOLDEN'] === '1';

/** A folder under test/golden (found from the compiled test file upwards). */
export function goldenDir(...parts: string[]): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'test', 'golden');
    if (existsSync(candidate)) return join(candidate, ...parts);
    const parent = resolve(dir, '..');
    if (parent === dir) throw new Error('cannot find test/golden');
    dir = parent;
  }
}
