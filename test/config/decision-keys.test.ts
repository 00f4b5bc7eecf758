// The longest-prefix keys in the config: parse, merge of several files, conflicts, limits, hash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, formatIssue } from '../../src/errors.js';
import { defaultConfig } from '../../src/config/merge.js';
import { hashConfig } from '../../src/config/key-values.js';
import { mergeConfigFragments } from '../../src/config/merge.js';
import { parseConfigFragment, parseConfigText } from '../../src/config/parse.js';

const OPTS = { enableIPv6: false, nomasqAllReservedRanges: false };
const V6 = { enableIPv6: true, nomasqAllReservedRanges: false };

function errors(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.issues.map(formatIssue);
    throw e;
  }
  assert.fail('no ConfigError');
}

function merge(files: Record<string, string>, opts = OPTS) {
  const fragments = Object.entries(files).map(([name, text]) => {
    const r = parseConfigFragment(text, name, opts);
    assert.deepEqual(r.issues, []);
    return r.fragment;
  });
  return mergeConfigFragments(fragments, opts);
}

test('the new lists are read with canonical text and key paths', () => {
  const { config } = parseConfigText(
    'masqueradeCIDRs: [10.9.0.0/16]\nsnat:\n  - cidrs: [203.0.113.0/24, 198.51.100.0/25]\n    toSource: 192.0.2.9\nmasqueradeSourceCIDRs: [10.244.0.0/16]\n',
    'f',
    OPTS,
  );
  assert.deepEqual(
    config.masqueradeCIDRs?.map((e) => [e.text, e.path]),
    [['10.9.0.0/16', 'masqueradeCIDRs[0]']],
  );
  assert.deepEqual(
    config.snat?.map((e) => [e.text, e.toSourceText, e.path]),
    [
      ['203.0.113.0/24', '192.0.2.9', 'snat[0].cidrs[0]'],
      ['198.51.100.0/25', '192.0.2.9', 'snat[0].cidrs[1]'],
    ],
  );
  assert.deepEqual(
    config.masqueradeSourceCIDRs?.map((e) => e.text),
    ['10.244.0.0/16'],
  );
});

test("a config without the new keys is exactly today's: no new fields, the same hash", () => {
  const { config } = parseConfigText('nonMasqueradeCIDRs: [10.0.0.0/8]\n', 'f', OPTS);
  assert.equal('masqueradeCIDRs' in config || 'snat' in config || 'masqueradeSourceCIDRs' in config, false);
  assert.equal(hashConfig(defaultConfig(OPTS)), hashConfig(parseConfigText('', 'f', OPTS).config));
  const withKey = parseConfigText('nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.9.0.0/16]\n', 'f', OPTS).config;
  assert.notEqual(hashConfig(withKey), hashConfig(config));
});

test('the same prefix with two actions is an error naming both places', () => {
  const errs = errors(() => parseConfigText('nonMasqueradeCIDRs:\n  - 10.9.0.0/16\nmasqueradeCIDRs:\n  - 10.9.0.0/16\n', 'f', OPTS));
  assert.deepEqual(errs, [
    'f:4:5: masqueradeCIDRs[0]: 10.9.0.0/16 has two different actions: masquerade (f:4:5 masqueradeCIDRs[0]) and keep the pod IP (f:2:5 nonMasqueradeCIDRs[0]); a prefix can have one action only, remove one of them',
  ]);
  const snat = errors(() => parseConfigText('masqueradeCIDRs: [203.0.113.0/24]\nsnat: [{cidrs: [203.0.113.0/24], toSource: 192.0.2.9}]\n', 'f', OPTS));
  assert.match(snat[0]!, /SNAT to 192\.0\.2\.9 \(f:2:17 snat\[0\]\.cidrs\[0\]\) and masquerade \(f:1:19 masqueradeCIDRs\[0\]\)/);
});

test('a masquerade entry equal to a default range says how to override the default list', () => {
  const errs = errors(() => parseConfigText('masqueradeCIDRs: [10.0.0.0/8]\n', 'f', OPTS));
  assert.match(errs[0]!, /the default list: set nonMasqueradeCIDRs to override it/);
});

test('merging files: every new list concatenates; duplicates warn; snat to two addresses for one prefix is a conflict', () => {
  const m = merge({
    'ip-masq-a': 'masqueradeCIDRs: [10.9.0.0/16]\nsnat: [{cidrs: [203.0.113.0/24], toSource: 192.0.2.9}]\nmasqueradeSourceCIDRs: [10.244.0.0/16]\n',
    'ip-masq-b': 'masqueradeCIDRs: [10.8.0.0/16, 10.9.0.0/16]\nsnat: [{cidrs: [198.51.100.0/24, 203.0.113.0/24], toSource: 192.0.2.9}]\nmasqueradeSourceCIDRs: [10.245.0.0/16]\n',
  });
  assert.deepEqual(
    m.config.masqueradeCIDRs?.map((e) => e.text),
    ['10.9.0.0/16', '10.8.0.0/16'],
  );
  assert.deepEqual(
    m.config.snat?.map((e) => `${e.text}>${e.toSourceText}`),
    ['203.0.113.0/24>192.0.2.9', '198.51.100.0/24>192.0.2.9'],
  );
  assert.deepEqual(
    m.config.masqueradeSourceCIDRs?.map((e) => e.text),
    ['10.244.0.0/16', '10.245.0.0/16'],
  );
  assert.equal(m.warnings.length, 2);
  const errs = errors(() =>
    merge({
      'ip-masq-a': 'snat:\n  - cidrs: [203.0.113.0/24]\n    toSource: 192.0.2.9\n',
      'ip-masq-b': 'snat:\n  - cidrs: [203.0.113.0/24]\n    toSource: 192.0.2.10\n',
    }),
  );
  assert.deepEqual(errs, [
    'ip-masq-b:2:13: snat[0].cidrs[0]: 203.0.113.0/24 is SNATed to 192.0.2.10 here (ip-masq-b:2:13 snat[0].cidrs[0]) but to 192.0.2.9 in ip-masq-a:2:13 snat[0].cidrs[0]; one destination can leave with one address only',
  ]);
});

test('cidrLimit counts every CIDR of every list', () => {
  const errs = errors(() =>
    parseConfigText(
      'cidrLimit: 3\nnonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.9.0.0/16]\nsnat: [{cidrs: [203.0.113.0/24], toSource: 192.0.2.9}]\nmasqueradeSourceCIDRs: [10.244.0.0/16]\n',
      'f',
      OPTS,
    ),
  );
  assert.equal(errs.length, 1);
  assert.match(errs[0]!, /^f:5:25: masqueradeSourceCIDRs\[0\]: the daemon can only accept up to 3 CIDRs .* but got 4 CIDRs/);
});

test('IPv6 entries and addresses need --enable-ipv6, in every new list', () => {
  const errs = errors(() => parseConfigText('masqueradeCIDRs: ["2001:db8::/32"]\nmasqueradeSourceCIDRs: ["fd00::/8"]\nsnat: [{cidrs: ["2001:db8:1::/48"], toSource: "2001:db8::9"}]\n', 'f', OPTS));
  assert.equal(errs.length, 3);
  for (const e of errs) assert.match(e, /Enable ipv6 using --enable-ipv6/);
  const { config } = parseConfigText('snat: [{cidrs: ["2001:db8:1::/48"], toSource: "2001:db8::9"}]\n', 'f', V6);
  assert.equal(config.snat?.[0]?.toSourceText, '2001:db8::9');
});

test('bad snat items get clear errors with their place', () => {
  const errs = errors(() =>
    parseConfigText(
      'snat:\n  - cidrs: [203.0.113.0/24]\n    toSource: not-an-ip\n  - cidrs: [203.0.113.0/24]\n  - {cidrs: [10.0.0.1/8], toSource: 192.0.2.1}\n  - {cidrs: ["2001:db8::/32"], toSource: 192.0.2.1, extra: 1}\n',
      'f',
      V6,
    ),
  );
  assert.ok(
    errs.some((e) => /^f:3:15: snat\[0\]\.toSource: toSource "not-an-ip" is not an IP address/.test(e)),
    errs.join('\n'),
  );
  assert.ok(
    errs.some((e) => /snat\[1\]\.toSource: snat item has no toSource/.test(e)),
    errs.join('\n'),
  );
  assert.ok(
    errs.some((e) => /snat\[2\]\.cidrs\[0\]: .*not aligned/.test(e)),
    errs.join('\n'),
  );
  assert.ok(
    errs.some((e) => /snat\[3\].*only cidrs and toSource/.test(e)),
    errs.join('\n'),
  );
});

test('a snat destination of the other family than its address is refused', () => {
  const errs = errors(() => parseConfigText('snat: [{cidrs: ["2001:db8::/32"], toSource: 192.0.2.1}]\n', 'f', V6));
  assert.match(errs[0]!, /2001:db8::\/32 is ipv6 but toSource 192\.0\.2\.1 is ipv4/);
});
