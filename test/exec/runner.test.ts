// The real runner with real small processes (sh, sleep, head, true): nothing here touches network
// state. Fork, flood and timeout cases are the ones a wrapper script or a broken tool produces.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { CommandError } from '../../src/errors.js';
import { createRunner, STDERR_KEEP_BYTES, type SpawnFn } from '../../src/exec/runner.js';

const RUNNER_JS = fileURLToPath(new URL('../../src/exec/runner.js', import.meta.url));

async function failure(p: Promise<unknown>): Promise<CommandError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CommandError, `a CommandError, not ${String(e)}`);
    return e;
  }
  assert.fail('the command should have failed');
}

function tempDir(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'ima-runner-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Whether a pid is gone (or only a zombie waiting to be reaped): it can hold no pipe any more. */
function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

async function waitGone(pid: number): Promise<void> {
  for (let i = 0; i < 250 && !gone(pid); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(gone(pid), `process ${pid} still running`);
}

test('spawned: a wrapper that starts a sleeper holding its pipes and exits: settled at the deadline, sleeper killed with its group', { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir();
  try {
    const pidFile = join(dir, 'pid');
    const run = createRunner();
    const e = await failure(run(['sh', '-c', `sleep 600 & echo $! > ${pidFile}; exit 0`], { timeoutMs: 300 }));
    assert.equal(e.failure, 'timeout');
    assert.match(e.message, /exited \(exit code 0\) but a process it started kept its output open past the 300ms limit; killed its process group/);
    await waitGone(Number(readFileSync(pidFile, 'utf8')));
  } finally {
    cleanup();
  }
});

test(`spawned: 64 MB on stderr: the error keeps the head (64 KiB), counts the rest, and quotes at most 200 bytes`, async () => {
  const run = createRunner();
  const e = await failure(run(['sh', '-c', 'head -c 67108864 /dev/zero | tr "\\0" x >&2; exit 1']));
  assert.equal(e.exitCode, 1);
  assert.ok(e.stderr.length < STDERR_KEEP_BYTES + 100, `stderr kept: ${e.stderr.length} bytes`);
  assert.match(e.stderr, /\[\.\.\. 67043328 more bytes not kept\]$/);
  assert.ok(Buffer.byteLength(e.message) < 400, `message: ${Buffer.byteLength(e.message)} bytes`);
  assert.match(e.message, /^sh -c .*: exit code 1: x{200}… \(cut, \d+ bytes\)$/);
});

test('spawned: a failure quotes the first three non-blank lines the tool printed, a blank line between them skipped', async () => {
  const e = await failure(createRunner()(['sh', '-c', 'printf " a \\n\\nb\\nc\\nd\\n" >&2; exit 2']));
  assert.equal(e.message, 'sh -c printf " a \\n\\nb\\nc\\nd\\n" >&2; exit 2: exit code 2: a | b | c');
});

test(`spawned: a wrapper that hangs with a forked sleeper: the deadline holds and the whole group dies`, { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir();
  try {
    const pidFile = join(dir, 'pid');
    const run = createRunner({ timeoutMs: 300 });
    const e = await failure(run(['sh', '-c', `sleep 600 & echo $! > ${pidFile}; sleep 600`]));
    assert.equal(e.failure, 'timeout');
    assert.equal(e.message, `sh -c sleep 600 & echo $! > ${pidFile}; sleep 600: timed out after 300ms; killed its process group (--command-timeout)`);
    await waitGone(Number(readFileSync(pidFile, 'utf8')));
  } finally {
    cleanup();
  }
});

test(`spawned: a caller-given timeout is reported without naming the flag`, { timeout: 60_000 }, async () => {
  const e = await failure(createRunner()(['sleep', '600'], { timeoutMs: 200 }));
  assert.equal(e.message, 'sleep 600: timed out after 200ms; killed its process group');
});

test(`spawned: stdout beyond the limit is an error that stops the command; output within it arrives whole`, { timeout: 60_000 }, async () => {
  const run = createRunner();
  const e = await failure(run(['head', '-c', '3000000', '/dev/zero'], { maxStdoutBytes: 1_000_000 }));
  assert.equal(e.failure, 'other');
  assert.match(e.message, /^head -c 3000000 \/dev\/zero: printed more than 1000000 bytes on stdout; stopped it \(output limit\)$/);
  const ok = await run(['head', '-c', '5000000', '/dev/zero']);
  assert.equal(ok.stdout.length, 5_000_000);
});

test(`spawned: a missing program is not-installed; a failing one keeps its classified failure and short message`, async () => {
  const run = createRunner();
  const missing = await failure(run(['ima-no-such-program-here']));
  assert.equal(missing.failure, 'not-installed');
  const busy = await failure(run(['sh', '-c', 'echo "Another app is currently holding the xtables lock." >&2; exit 4']));
  assert.equal(busy.failure, 'lock-busy');
  assert.equal(busy.message, 'sh -c echo "Another app is currently holding the xtables lock." >&2; exit 4: exit code 4: Another app is currently holding the xtables lock.');
});

test(`spawned: killAll ends the process group of every command still running`, { timeout: 60_000 }, async () => {
  const { dir, cleanup } = tempDir();
  try {
    const pidFile = join(dir, 'pid');
    const run = createRunner();
    const p = failure(run(['sh', '-c', `sleep 600 & echo $! > ${pidFile}; wait`], { timeoutMs: 600_000 }));
    for (let i = 0; i < 250 && !existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 20));
    const sleeper = Number(readFileSync(pidFile, 'utf8'));
    run.killAll();
    const e = await p;
    assert.match(e.message, /killed by SIGKILL/);
    await waitGone(sleeper);
  } finally {
    cleanup();
  }
});

/** A child as node returns it when the pipes could not be made: no stdio, an 'error' on the next tick. */
function childWithoutPipes(code: string): ChildProcess {
  const child = new EventEmitter() as unknown as ChildProcess;
  Object.assign(child, { pid: undefined, stdin: null, stdout: null, stderr: null });
  process.nextTick(() => {
    child.emit('error', Object.assign(new Error(`spawn iptables-nft ${code}`), { code, errno: -24, syscall: 'spawn iptables-nft' }));
    child.emit('close', -24, null);
  });
  return child;
}

test('spawn failures of every shape become CommandErrors: thrown, emitted on the child, emitted on a pipe', async () => {
  const thrown: SpawnFn = () => {
    throw Object.assign(new Error('spawn EINVAL'), { code: 'EINVAL' });
  };
  const a = await failure(createRunner({ spawn: thrown })(['iptables-nft', '-S']));
  assert.equal(a.failure, 'other');
  assert.match(a.message, /^iptables-nft -S: cannot start iptables-nft: spawn EINVAL$/);

  for (const code of ['EMFILE', 'ENFILE', 'EAGAIN']) {
    const b = await failure(createRunner({ spawn: () => childWithoutPipes(code) })(['iptables-nft', '-S'], { input: 'x' }));
    assert.equal(b.failure, 'resource', code);
    assert.match(b.message, new RegExp(`^iptables-nft -S: cannot start iptables-nft: ${code} \\(out of file descriptors`));
  }

  const pipeFails: SpawnFn = () => {
    const child = new EventEmitter() as unknown as ChildProcess;
    const stdout = new PassThrough();
    Object.assign(child, { pid: undefined, stdin: new PassThrough(), stdout, stderr: new PassThrough() });
    process.nextTick(() => stdout.emit('error', Object.assign(new Error('read EIO'), { code: 'EIO' })));
    return child;
  };
  const c = await failure(createRunner({ spawn: pipeFails, timeoutMs: 5_000 })(['nft', '-j', 'list', 'ruleset']));
  assert.match(c.message, /^nft -j list ruleset: cannot start nft: read EIO$/);
});

test('out of descriptors (nofile 64, all in use): the command fails as "resource", the process lives, and runs again once some are free', { timeout: 60_000 }, () => {
  const { dir, cleanup } = tempDir();
  try {
    const script = join(dir, 'emfile.mjs');
    writeFileSync(
      script,
      `import { openSync, closeSync } from 'node:fs';
import { createRunner } from ${JSON.stringify(RUNNER_JS)};
const run = createRunner();
const fds = [];
try { for (;;) fds.push(openSync('/dev/null', 'r')); } catch {}
const out = {};
try { await run(['true']); out.first = 'ok'; } catch (e) { out.first = { name: e.name, failure: e.failure, message: e.message }; }
for (const fd of fds.splice(0, 16)) closeSync(fd);
try { await run(['true']); out.second = 'ok'; } catch (e) { out.second = { failure: e.failure, message: e.message }; }
process.stdout.write(JSON.stringify(out));
`,
    );
    const r = spawnSync('prlimit', ['--nofile=64:64', process.execPath, script], { encoding: 'utf8', timeout: 50_000 });
    assert.equal(r.status, 0, `the process died: ${r.stderr}`);
    const out = JSON.parse(r.stdout) as { first: { name: string; failure: string; message: string }; second: unknown };
    assert.equal(out.first.name, 'CommandError', JSON.stringify(out.first));
    assert.equal(out.first.failure, 'resource');
    assert.match(out.first.message, /^true: cannot start true: EMFILE/);
    assert.equal(out.second, 'ok');
  } finally {
    cleanup();
  }
});

test('spawned: output, stderr and status arrive exactly as the command gave them, and every word is passed as it is', async () => {
  const run = createRunner();
  const words = ["it's", 'two words', '$HOME', '`id`', '"q"', 'a\nb', '*', ''];
  assert.deepEqual(await run(['printf', '[%s]', ...words]), { stdout: words.map((w) => `[${w}]`).join(''), stderr: '', exitCode: 0 });
  assert.deepEqual(await run(['sh', '-c', 'printf "a\\n\\n"; printf "e\\n" >&2; exit 3'], { okExitCodes: [3] }), { stdout: 'a\n\n', stderr: 'e\n', exitCode: 3 });
  const e = await failure(run(['sh', '-c', 'kill -TERM $$']));
  assert.equal(e.exitCode, null);
  assert.equal(e.signal, 'SIGTERM');
  assert.equal(e.timedOut, false);
  assert.match(e.message, /killed by SIGTERM/);
  // Without input, the command reads an empty stdin, never this process's.
  assert.equal((await run(['cat'])).stdout, '');
});

test('a CommandError says how long the command ran, whether its deadline killed it, and a restated one keeps it as its cause', { timeout: 60_000 }, async () => {
  const run = createRunner();
  const failed = await failure(run(['sh', '-c', 'sleep 0.2; exit 3']));
  assert.equal(failed.exitCode, 3);
  assert.equal(failed.signal, null);
  assert.equal(failed.timedOut, false);
  assert.ok(failed.durationMs !== undefined && failed.durationMs >= 150 && failed.durationMs < 20_000, `durationMs: ${failed.durationMs}`);
  const late = await failure(run(['sleep', '600'], { timeoutMs: 200 }));
  assert.equal(late.timedOut, true);
  assert.equal(late.signal, 'SIGKILL');
  assert.ok(late.durationMs !== undefined && late.durationMs >= 150, `durationMs: ${late.durationMs}`);
  const missing = await failure(run(['ima-no-such-program-here']));
  assert.equal(missing.durationMs, undefined);
  const restated = failed.restate('in other words');
  assert.equal(restated.message, 'in other words');
  assert.equal(restated.cause, failed);
  assert.deepEqual(
    [restated.argv, restated.exitCode, restated.stderr, restated.failure, restated.signal, restated.durationMs],
    [failed.argv, 3, failed.stderr, failed.failure, null, failed.durationMs],
  );
});
