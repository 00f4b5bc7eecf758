// A Runner that runs every command inside one test namespace, so a real backend under test
// can never touch the machine's own netfilter state.
import { CommandError } from '../../src/errors.js';
import { createRunner, type CommandResult, type Runner } from '../../src/exec/runner.js';

// `ip netns exec` reports a missing program with exit code 1, which callers such as
// `iptables -C` would otherwise read as a valid answer ("rule missing").
const EXEC_FAILED = /^exec of "([^"]*)" failed: No such file or directory/m;

function notInstalled(argv: readonly string[], stderr: string, exitCode: number | null): CommandError | undefined {
  const m = EXEC_FAILED.exec(stderr);
  if (!m) return undefined;
  return new CommandError(argv, exitCode, stderr, 'not-installed', `${argv.join(' ')}: ${m[1]} is not installed (not found in PATH)`);
}

/**
 * Wraps a Runner so each argv runs as `ip netns exec <ns> ...argv`. Input, timeout, ok exit
 * codes and env pass through unchanged; a program missing inside the namespace becomes a
 * CommandError with failure 'not-installed', as the plain runner reports it.
 */
export function netnsRunner(ns: string, runner: Runner = createRunner()): Runner {
  if (!ns) throw new Error('netnsRunner needs a namespace name');
  return async (argv, options) => {
    const full = ['ip', 'netns', 'exec', ns, ...argv];
    let result: CommandResult;
    try {
      result = await runner(full, options);
    } catch (e) {
      if (e instanceof CommandError) throw notInstalled(full, e.stderr, e.exitCode) ?? e;
      throw e;
    }
    const missing = notInstalled(full, result.stderr, result.exitCode);
    if (missing) throw missing;
    return result;
  };
}
