import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cli, tempDir, type TempDir } from './cli-helpers.js';
import { MAX_CIDRS, MAX_CONFIG_BYTES } from '../../src/limits.js';

let tmp: TempDir;
before(async () => {
  tmp = await tempDir();
});
after(() => tmp.remove());

test('a valid config exits 0 and says what it sets', async () => {
  const file = await tmp.write('good.yaml', 'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 192.0.2.0/24\nresyncInterval: 30s\n');
  const r = await cli(['validate', file]);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `${file}: valid: 2 non-masquerade CIDRs (cidrLimit 64), resyncInterval 30s\n`);
  assert.equal(r.stderr, '');
});

test('every error is printed as file:line:col: error: key path: message, and the exit code is 1', async () => {
  const file = await tmp.write('bad.yaml', 'nonMasqueradeCIDRs:\n  - 10.0.0.1/8\n  - abc\nresyncIntervall: 30s\ncidrLimit: -1\n');
  const r = await cli(['validate', file]);
  assert.equal(r.code, 1);
  assert.deepEqual(r.stdout.split('\n').filter(Boolean), [
    `${file}:2:5: error: nonMasqueradeCIDRs[0]: CIDR "10.0.0.1/8" is not aligned to a CIDR block, ip: "10.0.0.1" network: "10.0.0.0/8"`,
    `${file}:3:5: error: nonMasqueradeCIDRs[1]: CIDR "abc" could not be parsed, invalid CIDR address: abc`,
    `${file}:4:1: error: resyncIntervall: unknown key "resyncIntervall"; did you mean "resyncInterval"? Known keys: nonMasqueradeCIDRs, cidrLimit, masqLinkLocal, masqLinkLocalIPv6, resyncInterval, masqueradeCIDRs, snat, masqueradeSourceCIDRs`,
    `${file}:5:12: error: cidrLimit: expected a non-negative integer, got number -1`,
    `${file}: invalid: 4 errors`,
  ]);
});

test('an IPv6 CIDR is an error without --enable-ipv6, and the message says which flag to give', async () => {
  const file = await tmp.write('v6.yaml', 'nonMasqueradeCIDRs: ["10.0.0.0/8", "2001:db8::/32"]\n');
  const off = await cli(['validate', file]);
  assert.equal(off.code, 1);
  assert.match(off.stdout, /:1:36: error: nonMasqueradeCIDRs\[1\]: ipv6 is not enabled, but ipv6 cidr 2001:db8::\/32 provided\. Enable ipv6 using --enable-ipv6/);
  const on = await cli(['validate', '--enable-ipv6', file]);
  assert.equal(on.code, 0, on.stdout);
});

test('warnings (contained, duplicate, inside link-local) keep exit 0 and point at the entry', async () => {
  const file = await tmp.write('warn.yaml', ['nonMasqueradeCIDRs:', '  - 10.0.0.0/8', '  - 10.1.0.0/16', '  - 169.254.169.254/32', '  - 10.0.0.0/8', ''].join('\n'));
  const r = await cli(['validate', file]);
  assert.equal(r.code, 0);
  const lines = r.stdout.split('\n').filter(Boolean);
  assert.ok(
    lines.some((l) => l.startsWith(`${file}:5:5: warning: nonMasqueradeCIDRs[3]: 10.0.0.0/8 is listed twice`)),
    r.stdout,
  );
  assert.ok(
    lines.includes(
      `${file}:3:5: warning: nonMasqueradeCIDRs[1]: 10.1.0.0/16 lies inside 10.0.0.0/8 (${file}:2:5 nonMasqueradeCIDRs[0]), which already keeps it unmasqueraded; the entry changes nothing and can go`,
    ),
    r.stdout,
  );
  assert.ok(
    lines.includes(
      `${file}:4:5: warning: nonMasqueradeCIDRs[2]: 169.254.169.254/32 lies inside link-local 169.254.0.0/16, which is never masqueraded while masqLinkLocal is false; the entry changes nothing`,
    ),
    r.stdout,
  );
  assert.equal(lines.at(-1), `${file}: valid: 3 non-masquerade CIDRs (cidrLimit 64), resyncInterval 1m0s; 3 warnings`);
});

test('a link-local entry while masqLinkLocal is true is flagged as undoing it', async () => {
  const file = await tmp.write('ll.yaml', 'masqLinkLocal: true\nnonMasqueradeCIDRs: [169.254.0.0/16]\n');
  const r = await cli(['validate', file]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /warning: nonMasqueradeCIDRs\[0\]: masqLinkLocal is true, but 169\.254\.0\.0\/16 covers all of link-local/);
});

test('a list at 90% of cidrLimit warns; past the limit it is an error', async () => {
  const cidrs = (n: number) => Array.from({ length: n }, (_, i) => `  - 10.${i}.0.0/16`).join('\n');
  const near = await tmp.write('near.yaml', `cidrLimit: 10\nnonMasqueradeCIDRs:\n${cidrs(9)}\n`);
  const r = await cli(['validate', near]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /warning: cidrLimit: 9 of the 10 CIDRs cidrLimit allows are used/);
  const below = await tmp.write('below.yaml', `cidrLimit: 10\nnonMasqueradeCIDRs:\n${cidrs(8)}\n`);
  assert.doesNotMatch((await cli(['validate', below])).stdout, /warning/);
  const over = await tmp.write('over.yaml', `cidrLimit: 10\nnonMasqueradeCIDRs:\n${cidrs(11)}\n`);
  const o = await cli(['validate', over]);
  assert.equal(o.code, 1);
  assert.match(o.stdout, /over\.yaml:13:5: error: nonMasqueradeCIDRs\[10\]: the daemon can only accept up to 10 CIDRs/);
});

test('a path that names no config file is an error (the agent would silently use the defaults)', async () => {
  const r = await cli(['validate', `${tmp.dir}/does-not-exist.yaml`]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /does-not-exist\.yaml: error: no config file here .*the agent would run with the defaults/);
  const emptyDir = `${tmp.dir}/empty-dir`;
  await tmp.write('empty-dir/config', 'nonMasqueradeCIDRs: []\n'); // wrong file name: the agent skips it
  const d = await cli(['validate', emptyDir]);
  assert.equal(d.code, 1);
  assert.match(d.stdout, /directory without files named ip-masq\*/);
});

test('a directory is merged as the agent merges it, and JSON lists the files', async () => {
  const a = await tmp.write('dir/ip-masq-agent', 'nonMasqueradeCIDRs: [10.0.0.0/8]\n');
  const b = await tmp.write('dir/ip-masq-platform', 'nonMasqueradeCIDRs: [100.64.0.0/10]\n');
  const r = await cli(['validate', '--output', 'json', `${tmp.dir}/dir`]);
  assert.equal(r.code, 0);
  const out = JSON.parse(r.stdout);
  assert.equal(out.valid, true);
  assert.deepEqual(out.files, [a, b]);
  assert.deepEqual(out.errors, []);
  assert.deepEqual(out.configs[0].nonMasqueradeCIDRs, ['10.0.0.0/8', '100.64.0.0/10']);
});

test('JSON output: valid, files, errors with line and column, warnings', async () => {
  const file = await tmp.write('json-bad.yaml', 'nonMasqueradeCIDRs:\n  - 10.0.0.1/8\n');
  const r = await cli(['validate', file, '--output=json']);
  assert.equal(r.code, 1);
  const out = JSON.parse(r.stdout);
  assert.equal(out.valid, false);
  assert.deepEqual(out.errors, [
    { source: file, line: 2, column: 5, path: 'nonMasqueradeCIDRs[0]', message: 'CIDR "10.0.0.1/8" is not aligned to a CIDR block, ip: "10.0.0.1" network: "10.0.0.0/8"' },
  ]);
  assert.deepEqual(out.warnings, []);
});

test('several files: each is checked on its own; one invalid file makes the exit code 1', async () => {
  const good = await tmp.write('multi-good.yaml', 'nonMasqueradeCIDRs: [10.0.0.0/8]\n');
  const bad = await tmp.write('multi-bad.yaml', 'nonMasqueradeCIDRs: [-]\n');
  const r = await cli(['validate', good, bad]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, new RegExp(`${good}: valid`));
  assert.match(r.stdout, new RegExp(`${bad}: invalid`));
});

const CONFIGMAP = `apiVersion: v1
kind: ConfigMap
metadata:
  name: ip-masq-agent
  namespace: kube-system
data:
  config: |
    nonMasqueradeCIDRs:
      - 10.0.0.0/8
      - 10.0.0.1/8
    resyncInterval: 60s
`;

test('a ConfigMap manifest is checked through its data.config, with positions in the manifest', async () => {
  const file = await tmp.write('cm-bad.yaml', CONFIGMAP);
  const r = await cli(['validate', file]);
  assert.equal(r.code, 1);
  assert.equal(r.stdout.split('\n')[0], `${file}:10:9: error: data.config.nonMasqueradeCIDRs[1]: CIDR "10.0.0.1/8" is not aligned to a CIDR block, ip: "10.0.0.1" network: "10.0.0.0/8"`);
  const good = await tmp.write('cm-good.yaml', CONFIGMAP.replace('      - 10.0.0.1/8\n', ''));
  const g = await cli(['validate', good]);
  assert.equal(g.code, 0, g.stdout);
  assert.match(g.stdout, /valid: 1 non-masquerade CIDR/);
});

test('a ConfigMap whose key is not "config" is an error: the agent would silently use the defaults', async () => {
  const file = await tmp.write('cm-key.yaml', CONFIGMAP.replace('  config: |', '  agent-config: |').replace('      - 10.0.0.1/8\n', ''));
  const r = await cli(['validate', file]);
  assert.equal(r.code, 1);
  assert.match(
    r.stdout,
    new RegExp(
      `^${file}:7:3: error: data: ConfigMap ip-masq-agent has no data key "config" \\(found: agent-config\\); the DaemonSet mounts data.config as /etc/config/ip-masq-agent, so the agent would silently run with the defaults$`,
      'm',
    ),
  );
});

test('usage errors exit 2 and name the bad argument on stderr', async () => {
  const unknown = await cli(['validate', '--enable-ipv7']);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stdout, '');
  assert.match(unknown.stderr, /^ip-masq-agent validate: flag provided but not defined: -enable-ipv7 \(did you mean --enable-ipv6\?\)\nRun 'ip-masq-agent validate --help' for usage\.\n$/);
  const output = await cli(['validate', '--output=yaml']);
  assert.equal(output.code, 2);
  assert.match(output.stderr, /invalid value "yaml" for flag -output/);
});

test('--help shows an example and exits 0', async () => {
  const r = await cli(['validate', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^Usage: ip-masq-agent validate/);
  assert.match(r.stdout, /Examples:\n {2}ip-masq-agent validate /);
  assert.match(r.stdout, /--enable-ipv6/);
});

test('the DaemonSet flags pick the backend whose CIDR cap is checked; the error names it and the figure', async () => {
  const n = MAX_CIDRS['iptables-nft'] + 1;
  const list = Array.from({ length: n }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`);
  const file = await tmp.write('many.yaml', `cidrLimit: 1000000\nnonMasqueradeCIDRs: [${list.join(',')}]\n`);
  const onNft = await cli(['validate', '--backend=iptables', '--iptables-mode=nft', file]);
  assert.equal(onNft.code, 1);
  assert.match(
    onNft.stdout,
    new RegExp(
      `error: nonMasqueradeCIDRs\\[${n - 1}\\]: ${n.toLocaleString('en')} CIDRs are more than the iptables-nft backend is proven to handle: ${MAX_CIDRS['iptables-nft'].toLocaleString('en')} at most`,
    ),
  );
  const onNftables = await cli(['validate', '--backend=nftables', file]);
  assert.equal(onNftables.code, 0, onNftables.stdout.slice(0, 500));
  assert.match(onNftables.stdout, /warning: cidrLimit: cidrLimit 1000000 is above what the nftables backend is proven to handle/);
  const help = await cli(['validate', '--help']);
  assert.match(help.stdout, new RegExp(`nftables ${MAX_CIDRS.nftables.toLocaleString('en')}, iptables-nft ${MAX_CIDRS['iptables-nft'].toLocaleString('en')}`));
});

test('a file over the byte cap is an error with its size and the limit, not read whole', async () => {
  const head = 'nonMasqueradeCIDRs: [10.0.0.0/8]\n#';
  const file = await tmp.write('big.yaml', `${head}${'x'.repeat(MAX_CONFIG_BYTES - head.length)}\n`);
  const r = await cli(['validate', file]);
  assert.equal(r.code, 1);
  assert.equal(
    r.stdout,
    `${file}: error: config file is ${(MAX_CONFIG_BYTES + 1).toLocaleString('en')} bytes; the limit is ${MAX_CONFIG_BYTES.toLocaleString('en')} bytes\n${file}: invalid: 1 error\n`,
  );
});

test('validate on a FIFO, a dangling link or a deeply nested file: exit 1 with what the path is, never a hang or a crash', async () => {
  const { execFileSync } = await import('node:child_process');
  const { symlink } = await import('node:fs/promises');
  const fifo = `${tmp.dir}/ip-masq-fifo`;
  execFileSync('mkfifo', [fifo]);
  const dangling = `${tmp.dir}/ip-masq-dangling`;
  await symlink('..data/ip-masq-agent', dangling);
  const deep = await tmp.write('deep.yaml', `nonMasqueradeCIDRs: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`);
  const cases: [string, RegExp][] = [
    [fifo, /error: the config path is a FIFO \(named pipe\), not a regular file/],
    [dangling, /error: the config path is a symbolic link to "\.\.data\/ip-masq-agent", which does not exist/],
    [deep, /:1:36: error: lists and mappings nest more than 16 levels deep here/],
  ];
  for (const [path, want] of cases) {
    const r = await cli(['validate', path]);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stdout, want);
  }
});
