import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Runner } from '../../src/exec/runner.js';
import { UPDATE_GOLDEN, cli, goldenDir, tempDir, type TempDir } from './cli-helpers.js';

let tmp: TempDir;
before(async () => {
  tmp = await tempDir();
});
after(() => tmp.remove());

// test/golden/cli/render/<case>/: args.txt (one argument per line, {dir} = the case folder),
// an optional config.yaml, and stdout.txt, the exact output. UPDATE_GOLDEN=1 rewrites stdout.txt.
const root = goldenDir('cli', 'render');
for (const name of readdirSync(root).sort()) {
  test(`render golden: ${name} (and it runs nothing)`, async () => {
    const dir = join(root, name);
    const args = readFileSync(join(dir, 'args.txt'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((a) => a.replaceAll('{dir}', dir));
    // The default cli() runner throws on any command: render must not run one.
    const r = await cli(['render', ...args]);
    assert.equal(r.code, 0, r.stderr);
    const golden = join(dir, 'stdout.txt');
    if (UPDATE_GOLDEN) writeFileSync(golden, r.stdout);
    assert.equal(r.stdout, readFileSync(golden, 'utf8'), `${golden} differs; review and rerun with UPDATE_GOLDEN=1`);
  });
}

test('the iptables output holds the backend golden restore payload byte for byte', async () => {
  const r = await cli(['render', '--config', `${tmp.dir}/none`]);
  const payload = readFileSync(goldenDir('iptables', 'defaults', 'restore.txt'), 'utf8');
  assert.ok(r.stdout.includes(payload), r.stdout);
  assert.match(
    r.stdout,
    /^# then, if missing, the jump .*\n# {3}iptables -t nat -A POSTROUTING -m comment --comment "ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom IP-MASQ-AGENT chain" -m addrtype ! --dst-type LOCAL -j IP-MASQ-AGENT$/m,
  );
  // Every line is restore input or a comment, so the output can be piped to iptables-restore.
  for (const line of r.stdout.split('\n').filter(Boolean)) assert.match(line, /^(#|\*nat$|:IP-MASQ-AGENT |-A IP-MASQ-AGENT |COMMIT$)/);
});

test('the nftables output holds the backend golden script byte for byte', async () => {
  const r = await cli(['render', '--backend=nftables', '--config', `${tmp.dir}/none`]);
  assert.ok(r.stdout.includes(readFileSync(goldenDir('nftables', 'defaults', 'script.nft'), 'utf8')), r.stdout);
});

test('JSON: backend, and per family the command and its payload', async () => {
  const r = await cli(['render', '--config', `${tmp.dir}/none`, '--enable-ipv6', '--output', 'json']);
  assert.equal(r.code, 0);
  const out = JSON.parse(r.stdout);
  assert.equal(out.backend, 'iptables');
  assert.deepEqual(
    out.families.map((f: { family: string; command: string }) => [f.family, f.command]),
    [
      ['ipv4', 'iptables-restore --noflush'],
      ['ipv6', 'ip6tables-restore --noflush'],
    ],
  );
  assert.match(out.families[1].payload, /-d fe80::\/10 -j RETURN/);
  assert.match(out.families[0].jump, /^iptables -t nat -A POSTROUTING /);
});

test('--backend=auto decides as the agent does, with read-only commands only', async () => {
  const ran: string[] = [];
  const runner: Runner = async (argv) => {
    ran.push(argv.join(' '));
    if (argv[0] === 'nft' && argv[1] === 'list') return { stdout: 'table ip kube-proxy\n', stderr: '', exitCode: 0 };
    throw new Error(`unexpected ${argv.join(' ')}`);
  };
  const r = await cli(['render', '--backend=auto', '--config', `${tmp.dir}/none`], { runner });
  assert.equal(r.code, 0);
  assert.deepEqual(ran, ['nft list tables']);
  assert.match(r.stdout, /add table inet ip-masq-agent/);
  assert.match(r.stderr, /--backend=auto chose nftables on this host: kube-proxy runs in nftables mode/);
});

test('an invalid config exits 1 with its issues on stderr and prints no payload', async () => {
  const bad = await tmp.write('bad.yaml', 'nonMasqueradeCIDRs: [fc00::/7]\n');
  const r = await cli(['render', '--config', bad]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /bad\.yaml:1:22: nonMasqueradeCIDRs\[0\]: ipv6 is not enabled, but ipv6 cidr fc00::\/7 provided/);
});

test('config warnings go to stderr, so stdout stays a clean payload', async () => {
  const warn = await tmp.write('warn.yaml', 'nonMasqueradeCIDRs: [10.0.0.0/8, 10.0.0.0/8]\n');
  const r = await cli(['render', '--config', warn]);
  assert.equal(r.code, 0);
  assert.match(r.stderr, /^warning: .*10\.0\.0\.0\/8 is listed twice/m);
  assert.doesNotMatch(r.stdout, /warning/);
});

test('usage errors exit 2: unknown backend, a bad chain name, a stray argument', async () => {
  for (const [argv, re] of [
    [['--backend=iptables-nft'], /invalid value "iptables-nft" for flag -backend: want one of iptables, nftables, auto/],
    [['--masq-chain=has space'], /--masq-chain: .*"has space"/],
    [['config.yaml'], /unexpected argument "config\.yaml"/],
  ] as const) {
    const r = await cli(['render', ...argv]);
    assert.equal(r.code, 2, argv.join(' '));
    assert.equal(r.stdout, '');
    assert.match(r.stderr, re);
  }
});

test('--help shows an example and says what it assumes about --random-fully', async () => {
  const r = await cli(['render', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Examples:\n {2}ip-masq-agent render /);
  assert.match(r.stdout, /assumes iptables >= 1\.6\.2/);
});
