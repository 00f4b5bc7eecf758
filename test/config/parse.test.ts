import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, formatIssue, type ConfigIssue } from '../../src/errors.js';
import { RESERVED_CIDRS, type ConfigOptions } from '../../src/config/config.js';
import { defaultConfig } from '../../src/config/merge.js';
import { hashConfig } from '../../src/config/key-values.js';
import { parseConfigText } from '../../src/config/parse.js';
import { suggestKey } from '../../src/config/fragment.js';

const FILE = '/etc/config/ip-masq-agent';
const V4: ConfigOptions = { enableIPv6: false, nomasqAllReservedRanges: false };
const V6: ConfigOptions = { enableIPv6: true, nomasqAllReservedRanges: false };

function issuesOf(text: string, opts: ConfigOptions = V4): readonly ConfigIssue[] {
  try {
    parseConfigText(text, FILE, opts);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    assert.equal(err.message, err.issues.map(formatIssue).join('\n'));
    return err.issues;
  }
  assert.fail(`expected a ConfigError for ${JSON.stringify(text)}`);
}

const texts = (text: string, opts: ConfigOptions = V4) => parseConfigText(text, FILE, opts).config.nonMasqueradeCIDRs.map((e) => e.text);

describe('valid configs', () => {
  const cases: {
    name: string;
    text: string;
    opts?: ConfigOptions;
    cidrs?: string[];
    masqLinkLocal?: boolean;
    masqLinkLocalIPv6?: boolean;
    cidrLimit?: number;
    resync?: [string, number];
  }[] = [
    { name: 'user guide example', text: 'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\nresyncInterval: 60s\n', cidrs: ['10.0.0.0/8'], resync: ['1m0s', 60_000] },
    { name: 'user guide masqLinkLocal', text: 'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\nresyncInterval: 60s\nmasqLinkLocal: true\n', masqLinkLocal: true },
    { name: 'JSON', text: '{"nonMasqueradeCIDRs": ["192.0.2.0/24", "198.51.100.0/24"], "masqLinkLocal": false, "cidrLimit": 5}', cidrs: ['192.0.2.0/24', '198.51.100.0/24'], cidrLimit: 5 },
    { name: 'JSON indented with tabs', text: '{\n\t"nonMasqueradeCIDRs": ["10.244.0.0/16"],\n\t"masqLinkLocal": true\n}\n', cidrs: ['10.244.0.0/16'], masqLinkLocal: true },
    { name: 'YAML 1.1 yes/on are booleans', text: 'masqLinkLocal: yes\nmasqLinkLocalIPv6: on\n', masqLinkLocal: true, masqLinkLocalIPv6: true },
    { name: 'YAML 1.1 no/off are booleans', text: 'masqLinkLocal: no\nmasqLinkLocalIPv6: off\n', masqLinkLocal: false, masqLinkLocalIPv6: false },
    { name: 'empty list masquerades all but link-local', text: 'nonMasqueradeCIDRs: []\n', cidrs: [] },
    { name: 'key left out takes the default', text: 'masqLinkLocal: true\n', cidrs: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] },
    { name: 'canonical text', text: 'nonMasqueradeCIDRs: [10.0.0.0/08, "2001:DB8::/32", 2001:0db8:1::/48]\n', opts: V6, cidrs: ['10.0.0.0/8', '2001:db8::/32', '2001:db8:1::/48'] },
    { name: 'IPv6 with --enable-ipv6', text: 'nonMasqueradeCIDRs:\n- fc00::/7\n- 10.0.0.0/8\n', opts: V6, cidrs: ['fc00::/7', '10.0.0.0/8'] },
    { name: 'fractional duration', text: 'resyncInterval: 1.5s\n', resync: ['1.5s', 1500] },
    { name: 'micro sign (below the 1s floor)', text: 'resyncInterval: 2µs\n', resync: ['2µs', 1000] },
    { name: 'exactly the 1s floor', text: 'resyncInterval: 1000ms\n', resync: ['1s', 1000] },
    { name: 'just above the floor rounds up to the millisecond', text: 'resyncInterval: 1000500us\n', resync: ['1.0005s', 1001] },
    { name: 'cidrLimit counts IPv4 and IPv6 together', text: 'cidrLimit: 2\nnonMasqueradeCIDRs: [10.0.0.0/8, fd00::/8]\n', opts: V6, cidrLimit: 2 },
    { name: 'cidrLimit 0 with an empty list', text: 'cidrLimit: 0\nnonMasqueradeCIDRs: []\n', cidrs: [], cidrLimit: 0 },
    { name: 'byte-order mark', text: '\ufeffmasqLinkLocal: true\n', masqLinkLocal: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { config } = parseConfigText(c.text, FILE, c.opts ?? V4);
      if (c.cidrs)
        assert.deepEqual(
          config.nonMasqueradeCIDRs.map((e) => e.text),
          c.cidrs,
        );
      if (c.masqLinkLocal !== undefined) assert.equal(config.masqLinkLocal, c.masqLinkLocal);
      if (c.masqLinkLocalIPv6 !== undefined) assert.equal(config.masqLinkLocalIPv6, c.masqLinkLocalIPv6);
      if (c.cidrLimit !== undefined) assert.equal(config.cidrLimit, c.cidrLimit);
      if (c.resync) assert.deepEqual([config.resyncInterval, config.resyncIntervalMs], c.resync);
    });
  }

  it('entries keep source and key path', () => {
    const { config } = parseConfigText('nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 192.0.2.0/24\n', FILE, V4);
    assert.deepEqual(config.nonMasqueradeCIDRs[1], {
      cidr: { family: 'ipv4', base: 0xc0000200n, prefix: 24 },
      text: '192.0.2.0/24',
      source: FILE,
      path: 'nonMasqueradeCIDRs[1]',
    });
  });
});

describe('documents without keys mean defaults', () => {
  for (const text of ['', '\n\n', '# only a comment\n# another\n', 'null\n', '~', '{}', '---\n', '--- # nothing\n...\n']) {
    it(JSON.stringify(text), () => {
      const parsed = parseConfigText(text, FILE, V4);
      assert.deepEqual(parsed.config, defaultConfig(V4));
      assert.deepEqual(parsed.warnings, []);
    });
  }
});

describe('defaults', () => {
  it('RFC 1918 ranges, limit 64, link-local exempt, 60s', () => {
    const d = defaultConfig(V4);
    assert.deepEqual(
      d.nonMasqueradeCIDRs.map((e) => e.text),
      ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'],
    );
    assert.ok(d.nonMasqueradeCIDRs.every((e) => e.source === 'defaults'));
    assert.equal(d.cidrLimit, 64);
    assert.equal(d.masqLinkLocal, false);
    assert.equal(d.masqLinkLocalIPv6, false);
    assert.equal(d.resyncIntervalMs, 60_000);
    assert.equal(d.resyncInterval, '1m0s');
  });
  it('with --nomasq-all-reserved-ranges, the 11 reserved ranges in the reference order', () => {
    const opts = { enableIPv6: false, nomasqAllReservedRanges: true };
    assert.deepEqual(texts('masqLinkLocal: false', opts), [
      '10.0.0.0/8',
      '172.16.0.0/12',
      '192.168.0.0/16',
      '100.64.0.0/10',
      '192.0.0.0/24',
      '192.0.2.0/24',
      '192.88.99.0/24',
      '198.18.0.0/15',
      '198.51.100.0/24',
      '203.0.113.0/24',
      '240.0.0.0/4',
    ]);
    assert.equal(RESERVED_CIDRS.length, 11);
  });
  it('the reserved-ranges flag does not change an explicit list', () => {
    assert.deepEqual(texts('nonMasqueradeCIDRs: [192.0.2.0/24]', { enableIPv6: false, nomasqAllReservedRanges: true }), ['192.0.2.0/24']);
  });
  it('the hash depends on meaning, not on where the entries came from', () => {
    const fromFile = parseConfigText('nonMasqueradeCIDRs: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16]', FILE, V4).config;
    assert.equal(hashConfig(fromFile), hashConfig(defaultConfig(V4)));
    assert.notEqual(hashConfig(parseConfigText('masqLinkLocal: true', FILE, V4).config), hashConfig(defaultConfig(V4)));
    assert.match(hashConfig(fromFile), /^[0-9a-f]{64}$/);
  });
});

describe('invalid configs: every issue has file, line:column, key path and the facts', () => {
  const cases: { name: string; text: string; opts?: ConfigOptions; want: { path: string; line: number; column: number; has: string[] }[] }[] = [
    {
      name: 'unparsable CIDR',
      text: 'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - abcdefg\n',
      want: [{ path: 'nonMasqueradeCIDRs[1]', line: 3, column: 5, has: ['CIDR "abcdefg" could not be parsed, invalid CIDR address: abcdefg'] }],
    },
    {
      name: 'octet out of range',
      text: 'nonMasqueradeCIDRs: [10.256.0.0/16]',
      want: [{ path: 'nonMasqueradeCIDRs[0]', line: 1, column: 22, has: ['CIDR "10.256.0.0/16" could not be parsed, invalid CIDR address: 10.256.0.0/16'] }],
    },
    {
      name: 'misaligned CIDR',
      text: 'nonMasqueradeCIDRs:\n- 10.0.0.1/8\n',
      want: [{ path: 'nonMasqueradeCIDRs[0]', line: 2, column: 3, has: ['CIDR "10.0.0.1/8" is not aligned to a CIDR block, ip: "10.0.0.1" network: "10.0.0.0/8"'] }],
    },
    {
      name: 'IPv4-mapped IPv6 form',
      text: 'nonMasqueradeCIDRs: ["::ffff:10.0.0.0/104"]',
      opts: V6,
      want: [{ path: 'nonMasqueradeCIDRs[0]', line: 1, column: 22, has: ['IPv4 form "10.0.0.0/8"'] }],
    },
    {
      name: 'IPv6 while IPv6 is off',
      text: 'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - fc00::/7\n',
      want: [{ path: 'nonMasqueradeCIDRs[1]', line: 3, column: 5, has: ['ipv6 is not enabled, but ipv6 cidr fc00::/7 provided. Enable ipv6 using --enable-ipv6 agent flag'] }],
    },
    {
      name: 'null list item',
      text: 'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  -\n',
      want: [{ path: 'nonMasqueradeCIDRs[1]', line: 3, column: 4, has: ['null'] }],
    },
    {
      name: '[-] is not an empty list',
      text: 'nonMasqueradeCIDRs: [-]\n',
      want: [{ path: '', line: 1, column: 22, has: ['write [] for an empty list'] }],
    },
    {
      name: 'key with no value',
      text: 'masqLinkLocal: true\nnonMasqueradeCIDRs:\n',
      want: [{ path: 'nonMasqueradeCIDRs', line: 2, column: 1, has: ['null', 'write [] to masquerade everything except link-local, or remove the key for the defaults'] }],
    },
    {
      name: 'null scalar',
      text: 'cidrLimit: null\n',
      want: [{ path: 'cidrLimit', line: 1, column: 1, has: ['no value', 'default (64)'] }],
    },
    {
      name: 'unknown key with a suggestion',
      text: 'nonMasqueradeCIDR:\n  - 10.0.0.0/8\n',
      want: [{ path: 'nonMasqueradeCIDR', line: 1, column: 1, has: ['unknown key "nonMasqueradeCIDR"', 'did you mean "nonMasqueradeCIDRs"?'] }],
    },
    {
      name: 'unknown key without a close match',
      text: 'masqLinkLocal: true\nfoo: 1\n',
      want: [{ path: 'foo', line: 2, column: 1, has: ['unknown key "foo"', 'Known keys: nonMasqueradeCIDRs'] }],
    },
    {
      name: 'resyncInterval as a number (as in the reference, an error)',
      text: 'resyncInterval: 60\n',
      want: [{ path: 'resyncInterval', line: 1, column: 17, has: ['expected a Go duration string', 'got number 60'] }],
    },
    {
      name: 'resyncInterval with an unknown unit',
      text: 'resyncInterval: 1d\n',
      want: [{ path: 'resyncInterval', line: 1, column: 17, has: ['time: unknown unit "d" in duration "1d"'] }],
    },
    {
      name: 'resyncInterval without a unit',
      text: 'resyncInterval: "1"\n',
      want: [{ path: 'resyncInterval', line: 1, column: 17, has: ['time: missing unit in duration "1"'] }],
    },
    { name: 'resyncInterval negative', text: 'resyncInterval: -1m', want: [{ path: 'resyncInterval', line: 1, column: 17, has: ['must not be negative', '"-1m"'] }] },
    {
      name: 'a boolean written as a number past 2^53 is shown as written, not rounded',
      text: 'masqLinkLocal: 9007199254740993\n',
      want: [{ path: 'masqLinkLocal', line: 1, column: 16, has: ['got number 9007199254740993'] }],
    },
    {
      name: 'a cidrLimit past 2^53 is shown as written, with the largest accepted',
      text: 'cidrLimit: 9007199254740993\n',
      want: [{ path: 'cidrLimit', line: 1, column: 12, has: ['at most 9007199254740991', 'got number 9007199254740993'] }],
    },
    {
      name: 'a negative cidrLimit past 2^53 is shown as written',
      text: 'cidrLimit: -9007199254740993\n',
      want: [{ path: 'cidrLimit', line: 1, column: 12, has: ['got number -9007199254740993'] }],
    },
    {
      name: 'a huge number literal is quoted cut short',
      text: `masqLinkLocal: ${'9'.repeat(5000)}\n`,
      want: [{ path: 'masqLinkLocal', line: 1, column: 16, has: [`got number ${'9'.repeat(40)}... (cut, 5000 characters)`] }],
    },
    {
      name: 'resyncInterval overflow',
      text: 'resyncInterval: 9223372036854775808ns',
      want: [{ path: 'resyncInterval', line: 1, column: 17, has: ['time: invalid duration "9223372036854775808ns"'] }],
    },
    {
      name: 'boolean as a string',
      text: 'masqLinkLocal: "true"\n',
      want: [{ path: 'masqLinkLocal', line: 1, column: 16, has: ['expected true or false', 'got string "true"'] }],
    },
    { name: 'negative cidrLimit', text: 'cidrLimit: -1', want: [{ path: 'cidrLimit', line: 1, column: 12, has: ['non-negative integer', '-1'] }] },
    { name: 'fractional cidrLimit', text: 'cidrLimit: 1.5', want: [{ path: 'cidrLimit', line: 1, column: 12, has: ['non-negative integer', '1.5'] }] },
    {
      name: 'a list where a string is expected',
      text: 'nonMasqueradeCIDRs:\n  - [10.0.0.0/8]\n',
      want: [{ path: 'nonMasqueradeCIDRs[0]', line: 2, column: 5, has: ['a CIDR string', 'got a list'] }],
    },
    {
      name: 'a single string where a list is expected',
      text: 'nonMasqueradeCIDRs: 10.0.0.0/8\n',
      want: [{ path: 'nonMasqueradeCIDRs', line: 1, column: 21, has: ['a list of CIDR strings', 'got string "10.0.0.0/8"'] }],
    },
    {
      name: 'YAML 1.1 timestamp',
      text: 'nonMasqueradeCIDRs: [2001-12-14]\n',
      want: [{ path: 'nonMasqueradeCIDRs[0]', line: 1, column: 22, has: ['a date', 'quote it'] }],
    },
    { name: 'top level is a list', text: '- 10.0.0.0/8\n', want: [{ path: '', line: 1, column: 1, has: ['must be a mapping', 'got a list'] }] },
    { name: 'top level is a string', text: 'abcdefg\n', want: [{ path: '', line: 1, column: 1, has: ['must be a mapping', 'got a string of 7 bytes (its text is not shown'] }] },
    { name: 'duplicate key', text: 'cidrLimit: 1\ncidrLimit: 2\n', want: [{ path: '', line: 2, column: 1, has: ['duplicate key "cidrLimit"'] }] },
    {
      name: 'duplicate key in different case',
      text: 'cidrLimit: 1\nCIDRLimit: 2\n',
      want: [{ path: 'CIDRLimit', line: 2, column: 1, has: ['repeats "cidrLimit"'] }],
    },
    { name: 'YAML syntax error', text: 'nonMasqueradeCIDRs: [10.0.0.0/8\n', want: [{ path: '', line: 2, column: 1, has: [']'] }] },
    { name: 'tab indentation', text: 'nonMasqueradeCIDRs:\n\t- 10.0.0.0/8\n', want: [{ path: '', line: 2, column: 1, has: ['Tabs'] }] },
    { name: 'two documents', text: 'cidrLimit: 1\n---\ncidrLimit: 2\n', want: [{ path: '', line: 2, column: 1, has: ['more than one YAML document'] }] },
    { name: 'unresolved alias', text: 'cidrLimit: *x\n', want: [{ path: 'cidrLimit', line: 1, column: 12, has: ['cannot read this value'] }] },
    {
      name: 'more CIDRs than cidrLimit',
      text: `cidrLimit: 64\nnonMasqueradeCIDRs:\n${Array.from({ length: 65 }, (_, i) => `  - 10.${i}.0.0/16\n`).join('')}`,
      want: [{ path: 'nonMasqueradeCIDRs[64]', line: 67, column: 5, has: ['the daemon can only accept up to 64 CIDRs (excluding link-local), but got 65 CIDRs (excluding link local)'] }],
    },
    {
      name: 'the default limit is 64',
      text: `nonMasqueradeCIDRs:\n${Array.from({ length: 65 }, (_, i) => `  - 10.${i}.0.0/16\n`).join('')}`,
      want: [{ path: 'nonMasqueradeCIDRs[64]', line: 66, column: 5, has: ['up to 64 CIDRs', 'but got 65 CIDRs'] }],
    },
    {
      name: 'the limit counts IPv6 too',
      text: 'cidrLimit: 1\nnonMasqueradeCIDRs: [10.0.0.0/8, fd00::/8]\n',
      opts: V6,
      want: [{ path: 'nonMasqueradeCIDRs[1]', line: 2, column: 34, has: ['up to 1 CIDRs', 'but got 2 CIDRs'] }],
    },
    {
      name: 'every problem at once, in reading order',
      text: 'nonMasqueradeCIDRs:\n  - abcdefg\n  -\n  - 10.0.0.1/8\nresyncInterval: 60\nmasqLinkLocl: true\n',
      want: [
        { path: 'nonMasqueradeCIDRs[0]', line: 2, column: 5, has: ['could not be parsed'] },
        { path: 'nonMasqueradeCIDRs[1]', line: 3, column: 4, has: ['null'] },
        { path: 'nonMasqueradeCIDRs[2]', line: 4, column: 5, has: ['not aligned'] },
        { path: 'resyncInterval', line: 5, column: 17, has: ['got number 60'] },
        { path: 'masqLinkLocl', line: 6, column: 1, has: ['did you mean "masqLinkLocal"?'] },
      ],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const issues = issuesOf(c.text, c.opts);
      assert.equal(issues.length, c.want.length, issues.map(formatIssue).join('\n'));
      c.want.forEach((w, i) => {
        const got = issues[i]!;
        const text = formatIssue(got);
        assert.equal(got.source, FILE);
        assert.equal(got.path, w.path, text);
        assert.deepEqual([got.line, got.column], [w.line, w.column], text);
        assert.ok(text.startsWith(`${FILE}:${w.line}:${w.column}: ${w.path ? `${w.path}: ` : ''}`), text);
        for (const fact of w.has) assert.ok(got.message.includes(fact), `${JSON.stringify(fact)} missing in: ${text}`);
      });
    });
  }
});

describe('warnings', () => {
  it('a key in another case is accepted, with a warning giving the exact spelling', () => {
    const parsed = parseConfigText('NonMasqueradeCIDRs: [192.0.2.0/24]\nmasqlinklocal: true\n', FILE, V4);
    assert.deepEqual(
      parsed.config.nonMasqueradeCIDRs.map((e) => e.text),
      ['192.0.2.0/24'],
    );
    assert.equal(parsed.config.masqLinkLocal, true);
    assert.equal(parsed.warnings.length, 2);
    assert.equal(parsed.warnings[0]!.line, 1);
    assert.match(parsed.warnings[0]!.message, /write "nonMasqueradeCIDRs"/);
    assert.match(parsed.warnings[1]!.message, /write "masqLinkLocal"/);
  });
  it('a duplicate CIDR is accepted once, with a warning naming both paths', () => {
    const parsed = parseConfigText('nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 192.0.2.0/24\n  - 10.0.0.0/08\n', FILE, V4);
    assert.deepEqual(
      parsed.config.nonMasqueradeCIDRs.map((e) => e.text),
      ['10.0.0.0/8', '192.0.2.0/24'],
    );
    assert.equal(parsed.warnings.length, 1);
    const w = parsed.warnings[0]!;
    assert.equal(w.path, 'nonMasqueradeCIDRs[2]');
    assert.equal(w.line, 4);
    assert.ok(w.message.includes('nonMasqueradeCIDRs[0]') && w.message.includes('nonMasqueradeCIDRs[2]'), w.message);
  });
  describe('a resyncInterval below 1s runs at 1s, with one warning naming where it was written and the value in force', () => {
    for (const written of ['1ns', '0s', '"0"', '0.1ns', '999ms', '999999999ns']) {
      it(written, () => {
        const parsed = parseConfigText(`masqLinkLocal: true\nresyncInterval: ${written}\n`, FILE, V4);
        assert.equal(parsed.config.resyncIntervalMs, 1000);
        assert.equal(parsed.warnings.length, 1);
        const w = parsed.warnings[0]!;
        assert.deepEqual([w.source, w.path, w.line, w.column], [FILE, 'resyncInterval', 2, 17]);
        assert.ok(w.message.includes(`resyncInterval ${written.replace(/"/g, '')} is shorter than 1s`), w.message);
        assert.match(w.message, /resyncing every 1s/);
      });
    }
    it('1s itself warns about nothing', () => {
      assert.deepEqual(parseConfigText('resyncInterval: 1s\n', FILE, V4).warnings, []);
    });
  });
  describe('a bare number for resyncInterval is an error whose suggestion is itself accepted', () => {
    for (const [written, suggested] of [
      ['0', '0s'],
      ['60', '60s'],
      ['0.5', '0.5s'],
      ['9007199254740993', '60s'],
    ] as const) {
      it(written, () => {
        const [issue] = issuesOf(`resyncInterval: ${written}\n`);
        const m = /e\.g\. resyncInterval: "([^"]*)"/.exec(issue!.message);
        assert.ok(m, issue!.message);
        assert.equal(m[1], suggested, issue!.message);
        assert.ok(issue!.message.includes(`got number ${written}`), issue!.message);
        const accepted = parseConfigText(`resyncInterval: "${m[1]}"\n`, FILE, V4);
        assert.ok(accepted.config.resyncIntervalMs >= 1000);
      });
    }
  });
  it('a resync interval beyond Node timers is capped, with a warning', () => {
    const parsed = parseConfigText('resyncInterval: 100000h\n', FILE, V4);
    assert.equal(parsed.config.resyncIntervalMs, 2 ** 31 - 1);
    assert.equal(parsed.config.resyncInterval, '100000h0m0s');
    assert.match(parsed.warnings[0]!.message, /longest timer/);
  });
});

describe('suggestKey', () => {
  const cases: [string, string | undefined][] = [
    ['nonMasqueradeCIDR', 'nonMasqueradeCIDRs'],
    ['nonMasqueradeCidrs', 'nonMasqueradeCIDRs'],
    ['nonMasqCIDRs', 'nonMasqueradeCIDRs'],
    ['masqLinkLocalV6', 'masqLinkLocalIPv6'],
    ['resyncinterval', 'resyncInterval'],
    ['resync', 'resyncInterval'],
    ['cidrlimits', 'cidrLimit'],
    ['foo', undefined],
    ['config', undefined],
  ];
  for (const [key, want] of cases) it(`${key} -> ${String(want)}`, () => assert.equal(suggestKey(key), want));
});
