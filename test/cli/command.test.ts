// The prologue every operator command shares (defineCommand): --help, usage errors, a stray
// argument, an invalid config, and which error wins when there are two. Exact bytes, because
// scripts and CI logs read them.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cli, tempDir, type TempDir } from './cli-helpers.js';

let tmp: TempDir;
let bad: string;
before(async () => {
  tmp = await tempDir();
  bad = await tmp.write('bad.yaml', 'nonMasqueradeCIDRs: [fc00::/7]\n');
});
after(() => tmp.remove());

const ISSUE = 'bad.yaml:1:22: nonMasqueradeCIDRs[0]: ipv6 is not enabled, but ipv6 cidr fc00::/7 provided. Enable ipv6 using --enable-ipv6 agent flag';

test('every command: --help on stdout, exit 0, even beside a bad flag value or a stray argument', async () => {
  for (const name of ['validate', 'render', 'explain', 'status', 'cleanup']) {
    const r = await cli([name, 'stray', '--help']);
    assert.equal(r.code, 0, name);
    assert.equal(r.stderr, '', name);
    assert.match(
      r.stdout,
      new RegExp(`^Usage: ip-masq-agent ${name} .*\n\n[^]*\nExamples:\n {2}\\S[^]*\nFlags:\n[^]*  --output text\\|json\n[^]*are accepted and ignored, so the DaemonSet's args can be reused\\.\n$`),
      name,
    );
  }
});

test('every command: a usage error is one line naming the command, then where its help is; exit 2', async () => {
  for (const name of ['validate', 'render', 'explain', 'status', 'cleanup']) {
    const r = await cli([name, '--output=yaml']);
    assert.deepEqual(r, { code: 2, stdout: '', stderr: `ip-masq-agent ${name}: invalid value "yaml" for flag -output: want one of text, json\nRun 'ip-masq-agent ${name} --help' for usage.\n` }, name);
  }
});

test('render, status and cleanup refuse a stray argument; validate and explain take arguments', async () => {
  for (const name of ['render', 'status', 'cleanup']) {
    const r = await cli([name, 'now']);
    assert.deepEqual(r, { code: 2, stdout: '', stderr: `ip-masq-agent ${name}: unexpected argument "now"\nRun 'ip-masq-agent ${name} --help' for usage.\n` }, name);
  }
  // A bad flag value is reported before a stray argument, as the options are built first.
  const both = await cli(['render', '--masq-chain=has space', 'now']);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /^ip-masq-agent render: --masq-chain: /);
});

test('an invalid config: each command says what it means for it, lists the issues, and exits 1 or 3', async () => {
  const cases = [
    { argv: ['render', '--config', bad], code: 1, head: 'the config is invalid; the agent would keep its last good rules' },
    { argv: ['explain', '--config', bad, '10.0.0.1'], code: 1, head: 'the config is invalid; the agent would keep its last good rules' },
    { argv: ['status', '--config', bad], code: 3, head: 'cannot tell which rules are wanted: the config is invalid (the agent keeps its last good rules)' },
  ];
  for (const c of cases) {
    const r = await cli(c.argv);
    const name = c.argv[0] ?? '';
    assert.deepEqual(r, { code: c.code, stdout: '', stderr: `ip-masq-agent ${name}: ${c.head}:\n  ${tmp.dir}/${ISSUE}\n` }, name);
  }
  // validate reports the same issue as its answer, on stdout.
  const v = await cli(['validate', bad]);
  assert.equal(v.code, 1);
  assert.equal(v.stderr, '');
  assert.match(v.stdout, /bad\.yaml:1:22: error: nonMasqueradeCIDRs\[0\]: ipv6 is not enabled/);
});

test('explain checks its arguments before it reads the config: a bad address wins over a bad config', async () => {
  const r = await cli(['explain', '--config', bad, 'not-an-ip']);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^ip-masq-agent explain: destination "not-an-ip" is not an IP address: .*\nRun 'ip-masq-agent explain --help' for usage\.\n$/);
});
