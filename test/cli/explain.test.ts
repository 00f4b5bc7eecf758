import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cli, tempDir, type TempDir } from './cli-helpers.js';

let tmp: TempDir;
let config = '';
let missing = '';
before(async () => {
  tmp = await tempDir();
  config = await tmp.write('ip-masq-agent', ['nonMasqueradeCIDRs:', '  - 10.0.0.0/8', '  - 2001:db8:200::/48', 'resyncInterval: 60s', ''].join('\n'));
  missing = `${tmp.dir}/none`;
});
after(() => tmp.remove());

test('text: one line per destination, saying masquerade or keep, and why, with the config line', async () => {
  const r = await cli(['explain', '--config', config, '--enable-ipv6', '10.1.2.3', '203.0.113.7', '169.254.169.254', '2001:db8:200::5', '--local', '192.0.2.1', '192.0.2.1']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    [
      `10.1.2.3         keep pod IP  (matches 10.0.0.0/8 from ${config}:2:5 nonMasqueradeCIDRs[0])`,
      '203.0.113.7      masquerade   (no non-masquerade CIDR matches; MASQUERADE --random-fully)',
      '169.254.169.254  keep pod IP  (link-local 169.254.0.0/16 is not masqueraded while masqLinkLocal is false)',
      `2001:db8:200::5  keep pod IP  (matches 2001:db8:200::/48 from ${config}:3:5 nonMasqueradeCIDRs[1])`,
      '192.0.2.1        keep pod IP  (a local address of the node (--local): the POSTROUTING jump skips LOCAL destinations)',
      '',
    ].join('\n'),
  );
});

test('with --postrouting-position=first a "keep pod IP" answer says the exemption is final, in the backend\'s words; append adds nothing', async () => {
  const first = await cli(['explain', '--config', config, '--enable-ipv6', '--postrouting-position=first', '10.1.2.3']);
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^note: --postrouting-position=first: our jump is rule 1 of nat POSTROUTING and an exemption ends it \(ACCEPT\).*0x4000\/0x4000/m);
  const nft = await cli(['explain', '--config', config, '--enable-ipv6', '--backend=nftables', '--postrouting-position=first', '--iptables-masquerade-bit=0', '10.1.2.3']);
  assert.match(nft.stdout, /^note: --postrouting-position=first: an exemption binds the source to itself .*0x1\/0x1/m);
  const append = await cli(['explain', '--config', config, '--enable-ipv6', '10.1.2.3']);
  assert.doesNotMatch(append.stdout, /postrouting-position/);
  const masq = await cli(['explain', '--config', config, '--enable-ipv6', '--postrouting-position=first', '203.0.113.7']);
  assert.doesNotMatch(masq.stdout, /postrouting-position/, 'nothing to add when every answer is masquerade');
});

test('the defaults are named as such when no config file exists', async () => {
  const r = await cli(['explain', '--config', missing, '172.16.5.5', '198.51.100.7']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^172\.16\.5\.5 +keep pod IP +\(matches 172\.16\.0\.0\/12 from the default list \(nonMasqueradeCIDRs\[1\]; no config file sets nonMasqueradeCIDRs\)\)$/m);
  assert.match(r.stdout, /^198\.51\.100\.7 +masquerade /m);
  assert.match(r.stdout, /^note: no config sets any key at .*none; the agent's defaults are in use$/m);
  assert.match(r.stdout, /^note: the node's own addresses are never masqueraded/m);
  const reserved = await cli(['explain', '--config', missing, '--nomasq-all-reserved-ranges', '198.51.100.7']);
  assert.match(reserved.stdout, /^198\.51\.100\.7 +keep pod IP +\(matches 198\.51\.100\.0\/24 from the default list/m);
});

test('IPv6 without --enable-ipv6 is "not handled": the agent writes no IPv6 rules', async () => {
  const r = await cli(['explain', '--config', missing, '2001:db8::1', '--output', 'json']);
  assert.equal(r.code, 0);
  const [a] = JSON.parse(r.stdout);
  assert.equal(a.masquerade, false);
  assert.equal(a.reason, 'family-disabled');
  assert.match(a.explanation, /without --enable-ipv6/);
});

test('JSON: an array of objects with destination and masquerade, plus the match and its position', async () => {
  const r = await cli(['explain', '10.9.9.9', '--config', config, '--enable-ipv6', '203.0.113.7', '--output=json', '--to-ports=1024-29999,32768-65535', '--random-fully=false']);
  assert.equal(r.code, 0);
  assert.deepEqual(JSON.parse(r.stdout), [
    {
      destination: '10.9.9.9',
      family: 'ipv4',
      masquerade: false,
      action: 'keep',
      reason: 'non-masquerade-cidr',
      match: { list: 'nonMasqueradeCIDRs', cidr: '10.0.0.0/8', source: config, path: 'nonMasqueradeCIDRs[0]', line: 2, column: 5 },
      explanation: `matches 10.0.0.0/8 from ${config}:2:5 nonMasqueradeCIDRs[0]`,
    },
    {
      destination: '203.0.113.7',
      family: 'ipv4',
      masquerade: true,
      action: 'masquerade',
      reason: 'masquerade',
      randomFully: false,
      toPorts: ['1024-29999', '32768-65535'],
      explanation: 'no non-masquerade CIDR matches; MASQUERADE; tcp, udp and sctp get source ports 1024-29999,32768-65535',
    },
  ]);
});

test('the nftables backend is described in nft words', async () => {
  const r = await cli(['explain', '--config', config, '--enable-ipv6', '--backend=nftables', '8.8.8.8']);
  assert.match(r.stdout, /masquerade fully-random\)/);
});

test('a ConfigMap manifest works as --config, with positions in the manifest', async () => {
  const cm = await tmp.write('cm.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ip-masq-agent\ndata:\n  config: |\n    nonMasqueradeCIDRs:\n      - 10.0.0.0/8\n');
  const r = await cli(['explain', '--config', cm, '10.1.1.1']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`from ${cm}:8:9 data\\.config\\.nonMasqueradeCIDRs\\[0\\]\\)`));
});

test('usage errors exit 2 with the bad argument named: not an IP, a CIDR, no IP, bad --local', async () => {
  const cases: [string[], RegExp][] = [
    [['explain', '10.1.2'], /destination "10\.1\.2" is not an IP address/],
    [['explain', '10.0.0.0/8'], /destination "10\.0\.0\.0\/8" is not an IP address \(give a single address, not a CIDR\)/],
    [['explain'], /give at least one destination IP address/],
    [['explain', '--local', 'node', '10.0.0.1'], /--local "node" is not an IP address/],
    [['explain', '--outptu=json', '10.0.0.1'], /flag provided but not defined: -outptu \(did you mean --output\?\)/],
    [['explain', '--to-ports=9-1', '10.0.0.1'], /--to-ports: "9-1" is not a port range/],
  ];
  for (const [argv, re] of cases) {
    const r = await cli([...argv, '--config', missing]);
    assert.equal(r.code, 2, argv.join(' '));
    assert.equal(r.stdout, '');
    assert.match(r.stderr, re);
    assert.match(r.stderr, /Run 'ip-masq-agent explain --help' for usage\./);
  }
});

test('an invalid config exits 1 and lists its issues on stderr', async () => {
  const bad = await tmp.write('bad.yaml', 'nonMasqueradeCIDRs: [10.0.0.1/8]\n');
  const r = await cli(['explain', '--config', bad, '10.0.0.1']);
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, new RegExp(`${bad}:1:22: nonMasqueradeCIDRs\\[0\\]: CIDR "10\\.0\\.0\\.1/8" is not aligned`));
});

test('--help shows an example and exits 0', async () => {
  const r = await cli(['explain', '-h']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Examples:\n {2}ip-masq-agent explain 10\.1\.2\.3/);
  assert.match(r.stdout, /--local string/);
});
