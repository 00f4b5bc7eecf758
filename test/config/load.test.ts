import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFile, chmod, mkdir, mkdtemp, rm, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, formatIssue } from '../../src/errors.js';
import type { ConfigOptions } from '../../src/config/config.js';
import { defaultConfig } from '../../src/config/merge.js';
import { hashConfig } from '../../src/config/key-values.js';
import { ParseCache, detectConfigMode, isConfigFileName, loadConfig, type ConfigPathMode, type SettleOptions } from '../../src/config/load.js';
import { MAX_CONFIG_FILES } from '../../src/limits.js';
import { SETTLE_MAX_WAIT_MS, SETTLE_QUIET_MS } from '../../src/config/settle.js';

const V4: ConfigOptions = { enableIPv6: false, nomasqAllReservedRanges: false };
const V6: ConfigOptions = { enableIPv6: true, nomasqAllReservedRanges: false };

let root: string;
let counter = 0;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ip-masq-config-test-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh directory holding the given files. */
async function dirWith(files: Record<string, string>): Promise<string> {
  const dir = join(root, `case-${++counter}`);
  await mkdir(dir);
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

/**
 * The layout kubelet gives a ConfigMap volume: the data in a timestamped dot-directory, `..data`
 * pointing at it, and each key a symlink through `..data`.
 */
async function kubeletDir(files: Record<string, string>): Promise<string> {
  const dir = join(root, `kubelet-${++counter}`);
  const stamp = '..2026_11_26_05_39_00.123456789';
  await mkdir(join(dir, stamp), { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    await writeFile(join(dir, stamp, name), text);
    await symlink(join('..data', name), join(dir, name));
  }
  await symlink(stamp, join(dir, '..data'));
  return dir;
}

async function loadError(path: string, opts: ConfigOptions = V4, mode?: ConfigPathMode): Promise<ConfigError> {
  try {
    await loadConfig(path, opts, mode);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail(`expected a ConfigError loading ${path}`);
}

const texts = (l: { config: { nonMasqueradeCIDRs: readonly { text: string }[] } }) => l.config.nonMasqueradeCIDRs.map((e) => e.text);

describe('loadConfig from a single path', () => {
  it('a missing path means defaults', async () => {
    const loaded = await loadConfig(join(root, 'does-not-exist'), V4);
    assert.deepEqual(loaded.config, defaultConfig(V4));
    assert.equal(loaded.usingDefaults, true);
    assert.deepEqual(loaded.files, []);
    assert.equal(loaded.hash, hashConfig(defaultConfig(V4)));
  });
  it('a file is parsed', async () => {
    const dir = await dirWith({ 'ip-masq-agent': 'nonMasqueradeCIDRs: [192.0.2.0/24]\nresyncInterval: 5s\n' });
    const loaded = await loadConfig(join(dir, 'ip-masq-agent'), V4);
    assert.deepEqual(texts(loaded), ['192.0.2.0/24']);
    assert.equal(loaded.config.resyncIntervalMs, 5000);
    assert.equal(loaded.usingDefaults, false);
    assert.deepEqual(loaded.files, [join(dir, 'ip-masq-agent')]);
    assert.equal(loaded.config.nonMasqueradeCIDRs[0]!.source, join(dir, 'ip-masq-agent'));
  });
  it('an empty file is an error that says so, never the defaults (only a missing path means them)', async () => {
    const dir = await dirWith({ config: '', blank: '\n  \n' });
    const empty = await loadError(join(dir, 'config'));
    assert.equal(
      empty.message,
      `${join(dir, 'config')}: the config file is empty (0 bytes): not read as the defaults (a file being written, or one whose content was lost); write {} for the defaults, or remove the file`,
    );
    assert.match((await loadError(join(dir, 'blank'))).message, /blank: the config file is only whitespace \(4 bytes\): not read as the defaults/);
  });
  it('a comment-only file, or {}, means defaults', async () => {
    const dir = await dirWith({ config: '# nothing here yet\n', braces: '{}\n' });
    assert.equal((await loadConfig(join(dir, 'config'), V4)).usingDefaults, true);
    assert.equal((await loadConfig(join(dir, 'braces'), V4)).usingDefaults, true);
  });
  it('the kubelet symlink layout is followed (path is the key file)', async () => {
    const dir = await kubeletDir({ 'ip-masq-agent': 'nonMasqueradeCIDRs: [10.244.0.0/16]\n' });
    const loaded = await loadConfig(join(dir, 'ip-masq-agent'), V4);
    assert.deepEqual(texts(loaded), ['10.244.0.0/16']);
  });
  it('an invalid file is a ConfigError naming the file, line:column and key path', async () => {
    const dir = await dirWith({ 'ip-masq-agent': 'nonMasqueradeCIDRs:\n  - 10.0.0.1/8\n' });
    const err = await loadError(join(dir, 'ip-masq-agent'));
    assert.equal(err.message, `${join(dir, 'ip-masq-agent')}:2:5: nonMasqueradeCIDRs[0]: CIDR "10.0.0.1/8" is not aligned to a CIDR block, ip: "10.0.0.1" network: "10.0.0.0/8"`);
  });
  it('an unreadable file is a ConfigError with the path and the OS reason', { skip: process.getuid?.() === 0 ? 'root reads any file' : false }, async () => {
    const dir = await dirWith({ 'ip-masq-agent': 'masqLinkLocal: true\n' });
    const file = join(dir, 'ip-masq-agent');
    await chmod(file, 0o000);
    const err = await loadError(file);
    assert.equal(err.issues[0]!.source, file);
    assert.match(err.message, /EACCES/);
  });
  it('a path that cannot be reached is a ConfigError with the path and the OS reason', async () => {
    const dir = await dirWith({ 'ip-masq-agent': 'masqLinkLocal: true\n' });
    const path = join(dir, 'ip-masq-agent', 'config');
    const err = await loadError(path);
    assert.equal(err.issues[0]!.source, path);
    assert.match(err.message, /ENOTDIR/);
  });
  it('a dangling symlink inside a config directory is an error, not a silent fallback to defaults', async () => {
    const dir = await dirWith({});
    await symlink('..data/ip-masq-agent', join(dir, 'ip-masq-agent'));
    const err = await loadError(dir);
    assert.equal(err.issues[0]!.source, join(dir, 'ip-masq-agent'));
    assert.match(err.message, /ENOENT/);
  });
});

describe('loadConfig from a directory', () => {
  it('reads ip-masq* entries in name order and concatenates the lists', async () => {
    const dir = await dirWith({
      'ip-masq-b': 'nonMasqueradeCIDRs: [198.51.100.0/24]\n',
      'ip-masq-agent': 'nonMasqueradeCIDRs: [10.0.0.0/8]\n',
      'other-config': 'this is not ours: [\n',
      '.ip-masq-hidden': 'nonMasqueradeCIDRs: [203.0.113.0/24]\n',
    });
    const loaded = await loadConfig(dir, V4);
    assert.deepEqual(loaded.files, [join(dir, 'ip-masq-agent'), join(dir, 'ip-masq-b')]);
    assert.deepEqual(texts(loaded), ['10.0.0.0/8', '198.51.100.0/24']);
    assert.deepEqual(
      loaded.config.nonMasqueradeCIDRs.map((e) => [e.source, e.path]),
      [
        [join(dir, 'ip-masq-agent'), 'nonMasqueradeCIDRs[0]'],
        [join(dir, 'ip-masq-b'), 'nonMasqueradeCIDRs[0]'],
      ],
    );
    assert.equal(loaded.usingDefaults, false);
  });
  it('follows the kubelet ..data symlinks and skips the dot entries', async () => {
    const dir = await kubeletDir({
      'ip-masq-agent': 'nonMasqueradeCIDRs: [10.244.0.0/16]\nmasqLinkLocal: true\n',
      'ip-masq-platform': 'nonMasqueradeCIDRs: [192.0.2.0/24]\n',
    });
    const loaded = await loadConfig(dir, V4);
    assert.deepEqual(texts(loaded), ['10.244.0.0/16', '192.0.2.0/24']);
    assert.equal(loaded.config.masqLinkLocal, true);
    assert.deepEqual(loaded.files, [join(dir, 'ip-masq-agent'), join(dir, 'ip-masq-platform')]);
  });
  it('no matching file means defaults', async () => {
    const dir = await dirWith({ 'something-else': 'cidrLimit: 1\n' });
    const loaded = await loadConfig(dir, V4);
    assert.deepEqual(loaded.config, defaultConfig(V4));
    assert.equal(loaded.usingDefaults, true);
    assert.deepEqual(loaded.files, []);
  });
  it('a list absent from every file means defaults; present in one means that list only', async () => {
    const absent = await dirWith({ 'ip-masq-a': 'masqLinkLocal: true\n', 'ip-masq-b': 'resyncInterval: 30s\n' });
    const a = await loadConfig(absent, V4);
    assert.deepEqual(texts(a), ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']);
    assert.equal(a.config.masqLinkLocal, true);
    assert.equal(a.config.resyncInterval, '30s');
    const present = await dirWith({ 'ip-masq-a': 'masqLinkLocal: true\n', 'ip-masq-b': 'nonMasqueradeCIDRs: []\n' });
    assert.deepEqual(texts(await loadConfig(present, V4)), []);
  });
  it('drops a CIDR repeated across files, keeping the first, with a warning naming both files', async () => {
    const dir = await dirWith({
      'ip-masq-a': 'nonMasqueradeCIDRs: [10.0.0.0/8, 192.0.2.0/24]\n',
      'ip-masq-b': 'nonMasqueradeCIDRs:\n  - 198.51.100.0/24\n  - 10.0.0.0/8\n',
    });
    const loaded = await loadConfig(dir, V4);
    assert.deepEqual(texts(loaded), ['10.0.0.0/8', '192.0.2.0/24', '198.51.100.0/24']);
    assert.equal(loaded.config.nonMasqueradeCIDRs[0]!.source, join(dir, 'ip-masq-a'));
    assert.equal(loaded.warnings.length, 1);
    const w = loaded.warnings[0]!;
    assert.equal(w.source, join(dir, 'ip-masq-b'));
    assert.equal(w.line, 3);
    assert.ok(w.message.includes(join(dir, 'ip-masq-a')) && w.message.includes(join(dir, 'ip-masq-b')), w.message);
  });
  it('the same scalar value in two files is fine', async () => {
    const dir = await dirWith({ 'ip-masq-a': 'resyncInterval: 60s\n', 'ip-masq-b': 'resyncInterval: 1m\n' });
    assert.equal((await loadConfig(dir, V4)).config.resyncIntervalMs, 60_000);
  });
  it('a scalar set to different values in two files is a ConfigError naming both files and the key', async () => {
    const dir = await dirWith({
      'ip-masq-a': 'masqLinkLocal: true\ncidrLimit: 10\n',
      'ip-masq-b': 'masqLinkLocal: false\ncidrLimit: 10\n',
    });
    const err = await loadError(dir);
    assert.equal(err.issues.length, 1);
    const issue = err.issues[0]!;
    assert.equal(issue.source, join(dir, 'ip-masq-b'));
    assert.equal(issue.path, 'masqLinkLocal');
    assert.equal(issue.line, 1);
    assert.ok(issue.message.includes(`${join(dir, 'ip-masq-a')}:1:16`), formatIssue(issue));
  });
  it('cidrLimit applies to the merged list', async () => {
    const dir = await dirWith({
      'ip-masq-a': 'cidrLimit: 2\nnonMasqueradeCIDRs: [10.0.0.0/8, 192.0.2.0/24]\n',
      'ip-masq-b': 'nonMasqueradeCIDRs: [10.0.0.0/8, "2001:db8::/32"]\n',
    });
    const err = await loadError(dir, V6);
    assert.equal(err.issues.length, 1);
    assert.equal(err.issues[0]!.source, join(dir, 'ip-masq-b'));
    assert.equal(err.issues[0]!.path, 'nonMasqueradeCIDRs[1]');
    assert.match(err.message, /up to 2 CIDRs \(excluding link-local\), but got 3 CIDRs/);
  });
  it('errors from every file are reported together', async () => {
    const dir = await dirWith({ 'ip-masq-a': 'nonMasqueradeCIDR: []\n', 'ip-masq-b': 'nonMasqueradeCIDRs: [fc00::/7]\n' });
    const err = await loadError(dir);
    assert.deepEqual(
      err.issues.map((i) => i.source),
      [join(dir, 'ip-masq-a'), join(dir, 'ip-masq-b')],
    );
    assert.match(err.message, /did you mean "nonMasqueradeCIDRs"/);
    assert.match(err.message, /ipv6 is not enabled, but ipv6 cidr fc00::\/7 provided/);
  });
  it('the hash changes with the content, and not with the layout', async () => {
    const one = await dirWith({ 'ip-masq-agent': 'nonMasqueradeCIDRs: [10.0.0.0/8, 192.0.2.0/24]\n' });
    const two = await dirWith({ 'ip-masq-a': 'nonMasqueradeCIDRs: [10.0.0.0/8]\n', 'ip-masq-b': 'nonMasqueradeCIDRs: [192.0.2.0/24]\n' });
    const three = await dirWith({ 'ip-masq-agent': 'nonMasqueradeCIDRs: [192.0.2.0/24, 10.0.0.0/8]\n' });
    const [h1, h2, h3] = await Promise.all([one, two, three].map(async (d) => (await loadConfig(d, V4)).hash));
    assert.equal(h1, h2);
    assert.notEqual(h1, h3); // rule order matters
  });
  it('a subdirectory named ip-masq* is skipped with a warning', async () => {
    const dir = await dirWith({ 'ip-masq-agent': 'masqLinkLocal: true\n' });
    await mkdir(join(dir, 'ip-masq-old'));
    const loaded = await loadConfig(dir, V4);
    assert.deepEqual(loaded.files, [join(dir, 'ip-masq-agent')]);
    assert.match(loaded.warnings[0]!.message, /not a regular file/);
  });
});

describe('isConfigFileName', () => {
  const cases: [string, boolean][] = [
    ['ip-masq-agent', true],
    ['ip-masq-platform', true],
    ['ip-masq', true],
    ['..data', false],
    ['.ip-masq-agent', false],
    ['config', false],
    ['my-ip-masq', false],
  ];
  for (const [name, want] of cases) it(`${name}: ${want}`, () => assert.equal(isConfigFileName(name), want));
});

describe('loadConfig: only a missing path means defaults', () => {
  const GOOD = 'nonMasqueradeCIDRs: [192.0.2.0/24]\n';
  it('a dangling symlink as the config path is an error naming the link target, not the defaults', async () => {
    const dir = await dirWith({});
    const path = join(dir, 'ip-masq-agent');
    await symlink('..data/ip-masq-agent', path);
    for (const mode of [undefined, 'file'] as const) {
      const err = await loadError(path, V4, mode);
      assert.equal(err.issues.length, 1);
      assert.equal(err.issues[0]!.source, path);
      assert.match(err.message, /symbolic link to "\.\.data\/ip-masq-agent", which does not exist \(a dangling link/);
    }
  });
  it('a FIFO is an error, and reading it never waits for a writer', async () => {
    const dir = await dirWith({});
    const path = join(dir, 'ip-masq-agent');
    execFileSync('mkfifo', [path]);
    const err = await loadError(path, V4, 'file');
    assert.match(err.message, /the config path is a FIFO \(named pipe\), not a regular file/);
  });
  it('a socket and a character device are errors', async () => {
    const dir = await dirWith({});
    const sock = join(dir, 'sock');
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(sock, resolve));
    try {
      assert.match((await loadError(sock, V4, 'file')).message, /is a socket, not a regular file/);
    } finally {
      server.close();
    }
    assert.match((await loadError('/dev/null', V4, 'file')).message, /is a character device, not a regular file/);
  });
  it('in file mode, a directory where the file was is an error that says how to read a directory', async () => {
    const dir = await dirWith({ 'ip-masq-agent': GOOD });
    const err = await loadError(dir, V4, 'file');
    assert.match(err.message, /is a directory, not a regular file \(it was not a directory when the agent started; restart the agent/);
  });
  it('in directory mode, a file where the directory was is an error; a missing directory means defaults', async () => {
    const dir = await dirWith({ 'ip-masq-agent': GOOD });
    const err = await loadError(join(dir, 'ip-masq-agent'), V4, 'directory');
    assert.match(err.message, /is a regular file, but it was a directory when the agent started/);
    const loaded = await loadConfig(join(dir, 'gone'), V4, 'directory');
    assert.equal(loaded.usingDefaults, true);
  });
  it('a symlink to a regular file is read in file mode; a missing parent directory means defaults', async () => {
    const dir = await dirWith({ real: GOOD });
    await symlink('real', join(dir, 'ip-masq-agent'));
    assert.deepEqual(texts(await loadConfig(join(dir, 'ip-masq-agent'), V4, 'file')), ['192.0.2.0/24']);
    assert.equal((await loadConfig(join(dir, 'no-such-dir', 'ip-masq-agent'), V4, 'file')).usingDefaults, true);
  });
  it('a FIFO named ip-masq* in a config directory is skipped with a warning, never opened', async () => {
    const dir = await dirWith({ 'ip-masq-agent': GOOD });
    execFileSync('mkfifo', [join(dir, 'ip-masq-pipe')]);
    const loaded = await loadConfig(dir, V4, 'directory');
    assert.deepEqual(loaded.files, [join(dir, 'ip-masq-agent')]);
    assert.deepEqual(texts(loaded), ['192.0.2.0/24']);
    assert.match(loaded.warnings[0]!.message, /skipped: a FIFO \(named pipe\), not a regular file/);
  });
  it('a file whose name is not UTF-8 is skipped with a warning naming it; the other files are read', async () => {
    const dir = await dirWith({ 'ip-masq-agent': GOOD });
    await writeFile(Buffer.concat([Buffer.from(`${dir}/ip-masq-`), Buffer.from([0xff, 0x41])]), 'nonMasqueradeCIDRs: [198.51.100.0/24]\n');
    const loaded = await loadConfig(dir, V4, 'directory');
    assert.deepEqual(loaded.files, [join(dir, 'ip-masq-agent')]);
    assert.deepEqual(texts(loaded), ['192.0.2.0/24']);
    assert.deepEqual(
      loaded.warnings.map((w) => `${w.source}: ${w.message}`),
      [`${dir}/ip-masq-\\xffA: skipped: the file name is not valid UTF-8; rename it to read it`],
    );
  });
  it(`a directory of more than ${MAX_CONFIG_FILES} ip-masq* entries is an error before any is read; ${MAX_CONFIG_FILES} are read`, async () => {
    const dir = await dirWith({});
    for (let i = 0; i < MAX_CONFIG_FILES; i++) await writeFile(join(dir, `ip-masq-${String(i).padStart(4, '0')}`), 'masqLinkLocal: true\n');
    const loaded = await loadConfig(dir, V4, 'directory');
    assert.equal(loaded.files.length, MAX_CONFIG_FILES);
    // Empty: not one of them is opened (each would be an error of its own).
    await writeFile(join(dir, 'ip-masq-more'), '');
    const err = await loadError(dir, V4, 'directory');
    assert.equal(err.message, `${dir}: the config directory holds 1,001 ip-masq* entries; the limit is 1,000 (merge them into fewer files)`);
  });
  it('detectConfigMode: a directory (or a link to one) is directory mode; anything else, missing included, file mode', async () => {
    const dir = await dirWith({ 'ip-masq-agent': GOOD });
    await symlink(dir, join(root, `link-${++counter}`));
    assert.equal(detectConfigMode(dir), 'directory');
    assert.equal(detectConfigMode(join(root, `link-${counter}`)), 'directory');
    assert.equal(detectConfigMode(join(dir, 'ip-masq-agent')), 'file');
    assert.equal(detectConfigMode(join(dir, 'missing')), 'file');
  });
});

describe('loadConfig with a cache (the agent at every resync)', () => {
  it('an unchanged config gives back the same result (no parse, merge or config hash); a change in any file, or a file more, a new one', async () => {
    const dir = await dirWith({ 'ip-masq-a': 'nonMasqueradeCIDRs: [10.0.0.0/8]\n', 'ip-masq-b': 'masqLinkLocal: true\n' });
    const cache = new ParseCache();
    const first = await loadConfig(dir, V4, 'directory', cache);
    assert.equal(await loadConfig(dir, V4, 'directory', cache), first);
    // Rewritten with the same bytes (kubelet re-publishing an unchanged ConfigMap): still the same.
    await writeFile(join(dir, 'ip-masq-b'), 'masqLinkLocal: true\n');
    assert.equal(await loadConfig(dir, V4, 'directory', cache), first);
    await writeFile(join(dir, 'ip-masq-b'), 'masqLinkLocal: false\n');
    const changed = await loadConfig(dir, V4, 'directory', cache);
    assert.notEqual(changed, first);
    assert.equal(changed.config.masqLinkLocal, false);
    await writeFile(join(dir, 'ip-masq-c'), 'resyncInterval: 5s\n');
    const more = await loadConfig(dir, V4, 'directory', cache);
    assert.notEqual(more, changed);
    assert.equal(more.config.resyncIntervalMs, 5000);
    // Other options (a flag) are another config even for the same files.
    assert.notEqual(await loadConfig(dir, { ...V4, nomasqAllReservedRanges: true }, 'directory', cache), more);
  });

  it('an invalid file in between: the error, then the good config again once it is fixed', async () => {
    const file = join(root, `cached-${++counter}`);
    await writeFile(file, 'nonMasqueradeCIDRs: [10.0.0.0/8]\n');
    const cache = new ParseCache();
    const good = await loadConfig(file, V4, 'file', cache);
    await writeFile(file, 'nonMasqueradeCIDRs: [10.0.0.0/88]\n');
    await assert.rejects(loadConfig(file, V4, 'file', cache), ConfigError);
    await writeFile(file, 'nonMasqueradeCIDRs: [10.0.0.0/8]\n');
    assert.equal(await loadConfig(file, V4, 'file', cache), good);
  });
});

/**
 * A clock for the loader's settle waits that the test drives: `now` is real time plus a skew, and
 * each wait moves the skew on at once; then `during` (a writer's next step, at the end of the wait)
 * runs. The writer dates what it writes by this clock with `written`, as a real writer's change is
 * dated by the real one.
 */
function settleClock(skewMs = 0, during: (waits: number, written: (file: string) => Promise<void>) => Promise<void> | void = () => undefined): SettleOptions & { readonly waits: number[] } {
  const waits: number[] = [];
  let skew = skewMs;
  const now = (): number => Date.now() + skew;
  // mtime at the clock's now: the loader's age is now - max(mtime, ctime), and ctime (real time) is the older.
  const written = (file: string): Promise<void> => utimes(file, now() / 1000, now() / 1000);
  return {
    waits,
    clock: {
      now,
      setTimer: (ms, fn) => {
        waits.push(ms);
        skew += ms;
        void Promise.resolve(during(waits.length, written)).then(fn);
        return () => undefined;
      },
    },
  };
}

describe('loadConfig with settle (the agent): a file being written is never read half-way', () => {
  const FULL = 'nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\n';
  it('a file changed just now is read once it has been unchanged for the quiet time; one changed long ago at once', async () => {
    const dir = await dirWith({ 'ip-masq-agent': FULL });
    const fresh = settleClock();
    assert.deepEqual(texts(await loadConfig(join(dir, 'ip-masq-agent'), V4, 'file', undefined, fresh)), ['10.0.0.0/8', '198.51.100.0/24']);
    assert.equal(fresh.waits.length, 1);
    assert.ok(fresh.waits[0]! > SETTLE_QUIET_MS - 100 && fresh.waits[0]! <= SETTLE_QUIET_MS, String(fresh.waits));
    const later = settleClock(SETTLE_QUIET_MS);
    await loadConfig(join(dir, 'ip-masq-agent'), V4, 'file', undefined, later);
    assert.deepEqual(later.waits, []);
  });
  it('a file truncated and then written (a slow writer) gives the written config, never the defaults or an empty-file error', async () => {
    const dir = await dirWith({ 'ip-masq-agent': FULL });
    const file = join(dir, 'ip-masq-agent');
    await truncate(file, 0);
    const clock = settleClock(0, async (n, written) => {
      if (n > 1) return;
      await writeFile(file, FULL);
      await written(file);
    });
    const loaded = await loadConfig(file, V4, 'file', undefined, clock);
    assert.equal(loaded.usingDefaults, false);
    assert.deepEqual(texts(loaded), ['10.0.0.0/8', '198.51.100.0/24']);
    assert.equal(clock.waits.length, 2, 'waited for the truncation, then for the write');
    assert.ok(
      clock.waits.every((ms) => ms > 0 && ms <= SETTLE_QUIET_MS),
      String(clock.waits),
    );
  });
  it('a file written line by line in a config directory gives the whole list, not a version part-way', async () => {
    const lines = ['nonMasqueradeCIDRs:\n', ...Array.from({ length: 8 }, (_, i) => `  - 10.${i}.0.0/16\n`)];
    const dir = await dirWith({ 'ip-masq-agent': lines[0]!, 'ip-masq-other': 'masqLinkLocal: true\n' });
    const clock = settleClock(0, async (n, written) => {
      if (n >= lines.length) return;
      await appendFile(join(dir, 'ip-masq-agent'), lines[n]!);
      await written(join(dir, 'ip-masq-agent'));
    });
    const loaded = await loadConfig(dir, V4, 'directory', undefined, clock);
    assert.equal(texts(loaded).length, 8);
    assert.equal(loaded.config.masqLinkLocal, true);
    assert.equal(clock.waits.length, lines.length);
  });
  it('a writer that never stops: an error after the longest wait, which says so (the agent keeps the last good config)', async () => {
    const dir = await dirWith({ 'ip-masq-agent': FULL });
    const file = join(dir, 'ip-masq-agent');
    const clock = settleClock(0, async (n, written) => {
      await writeFile(file, `# rewrite ${n}\n${FULL}`);
      await written(file);
    });
    const err = await loadConfig(file, V4, 'file', undefined, clock).then(
      () => assert.fail('expected a ConfigError'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConfigError);
    assert.equal(
      err.message,
      `${file}: the config file is still being written: it changed again within every ${SETTLE_QUIET_MS} ms for ${SETTLE_MAX_WAIT_MS / 1000} s; it is read once it has been unchanged for ${SETTLE_QUIET_MS} ms`,
    );
    const waited = clock.waits.reduce((a, b) => a + b, 0);
    assert.ok(waited <= SETTLE_MAX_WAIT_MS, `waited ${waited} ms`);
  });
  it('a clock stepped back (the file changed "in the future"): two looks a quiet time apart settle it', async () => {
    const dir = await dirWith({ 'ip-masq-agent': FULL });
    const clock = settleClock(-60_000);
    assert.equal(texts(await loadConfig(join(dir, 'ip-masq-agent'), V4, 'file', undefined, clock)).length, 2);
    assert.deepEqual(clock.waits, [SETTLE_QUIET_MS]);
  });
  it('a file dated in the future is waited for once, not again at every resync (the agent keeps its looks in the cache)', async () => {
    const dir = await dirWith({ 'ip-masq-agent': FULL });
    const file = join(dir, 'ip-masq-agent');
    const ahead = Date.now() / 1000 + 3600;
    await utimes(file, ahead, ahead);
    const clock = settleClock();
    const cache = new ParseCache();
    const first = await loadConfig(file, V4, 'file', cache, clock);
    assert.equal(await loadConfig(file, V4, 'file', cache, clock), first);
    assert.deepEqual(clock.waits, [SETTLE_QUIET_MS]);
  });
  it('a file kubelet just published (a ConfigMap swap) is read at once: it was complete before the swap', async () => {
    const dir = await kubeletDir({ 'ip-masq-agent': FULL });
    const clock = settleClock();
    assert.equal(texts(await loadConfig(join(dir, 'ip-masq-agent'), V4, 'file', undefined, clock)).length, 2);
    assert.equal(texts(await loadConfig(dir, V4, 'directory', undefined, clock)).length, 2);
    assert.deepEqual(clock.waits, []);
  });
});

describe('loadConfig keeps where each CIDR entry was written (one load for the agent and the commands)', () => {
  it('plain YAML, YAML the yaml library reads, and JSON: line:column by source and key path; defaults have none', async () => {
    const dir = await dirWith({
      'ip-masq-a': 'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 192.0.2.0/24\n',
      // An anchor takes the yaml library's reading, not the plain reader's.
      'ip-masq-b': 'masqueradeCIDRs: &m\n  - 10.1.0.0/16\nmasqueradeSourceCIDRs:\n    - 10.244.0.0/16\n',
      'ip-masq-c': '{"snat": [{"cidrs": ["203.0.113.0/24"], "toSource": "198.51.100.9"}]}',
    });
    const loaded = await loadConfig(dir, V4);
    const at = (file: string, path: string) => loaded.positions?.of({ source: join(dir, file), path });
    assert.deepEqual(at('ip-masq-a', 'nonMasqueradeCIDRs[1]'), { line: 3, column: 5 });
    assert.deepEqual(at('ip-masq-b', 'masqueradeCIDRs[0]'), { line: 2, column: 5 });
    assert.deepEqual(at('ip-masq-b', 'masqueradeSourceCIDRs[0]'), { line: 4, column: 7 });
    assert.deepEqual(at('ip-masq-c', 'snat[0].cidrs[0]'), { line: 1, column: 22 });
    assert.deepEqual(at('ip-masq-a', 'nonMasqueradeCIDRs[2]'), {});
    const defaults = await loadConfig(await dirWith({ 'ip-masq-agent': 'resyncInterval: 1m\n' }), V4);
    assert.deepEqual(defaults.positions?.of(defaults.config.nonMasqueradeCIDRs[0]!), {});
  });

  it('a Kubernetes manifest is read for its ConfigMap only when asked (the commands), located in the manifest', async () => {
    const manifest = [
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata:',
      '  name: ip-masq-agent',
      'data:',
      '  config: |',
      '    nonMasqueradeCIDRs:',
      '      - 10.0.0.0/8',
      '    masqLinkLocal: tru',
      '',
    ].join('\n');
    const file = join(await dirWith({ 'cm.yaml': manifest.replace('tru', 'true') }), 'cm.yaml');
    const loaded = await loadConfig(file, V4, undefined, undefined, undefined, true);
    assert.deepEqual(
      loaded.config.nonMasqueradeCIDRs.map((e) => [e.text, e.source, e.path]),
      [['10.0.0.0/8', file, 'data.config.nonMasqueradeCIDRs[0]']],
    );
    assert.equal(loaded.config.masqLinkLocal, true);
    assert.deepEqual(loaded.positions?.of(loaded.config.nonMasqueradeCIDRs[0]!), { line: 8, column: 9 });
    // The agent reads such a file as a config, which it is not.
    assert.match((await loadError(file)).issues.map(formatIssue).join('\n'), /unknown key "apiVersion"/);
    const bad = join(await dirWith({ 'cm.yaml': manifest }), 'cm.yaml');
    let err: unknown;
    await loadConfig(bad, V4, undefined, undefined, undefined, true).catch((e: unknown) => (err = e));
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(
      err.issues.map((i) => [i.path, i.line, i.column]),
      [['data.config.masqLinkLocal', 9, 20]],
    );
  });
});
