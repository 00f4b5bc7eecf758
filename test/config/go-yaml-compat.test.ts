// The reference agent reads its config with Kubernetes' YAML reader: go-yaml v2 (v2.4.0) for YAML,
// Go's encoding/json for a text that starts with `{`. A config it accepts must be read to the same
// values here, and one it refuses must be refused, with a message that says what and where:
// merge keys (`<<`), the line breaks go-yaml v2 knows (CR, NEL, LS, PS), `1:30`, which v2
// reads as a string where YAML 1.1 reads 90, and Go's `0o17`, `0X1F`, `0B11` integers.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, type ConfigIssue } from '../../src/errors.js';
import type { ConfigOptions, MasqConfig } from '../../src/config/config.js';
import { parseConfigFragment, parseConfigText, parseFragmentWithYaml } from '../../src/config/parse.js';
import { readPlainFragment } from '../../src/config/fragment.js';

const FILE = '/etc/config/ip-masq-agent';
const V4: ConfigOptions = { enableIPv6: false, nomasqAllReservedRanges: false };

/** The values a config sets, in the terms the reference logs them. */
function valuesOf(text: string): { cidrs: string[]; cidrLimit: number; masqLinkLocal: boolean; resync: string; warnings: string[] } {
  const { config, warnings } = parseConfigText(text, FILE, V4);
  const c: MasqConfig = config;
  return {
    cidrs: c.nonMasqueradeCIDRs.map((e) => e.text),
    cidrLimit: c.cidrLimit,
    masqLinkLocal: c.masqLinkLocal,
    resync: c.resyncInterval,
    warnings: warnings.map((w) => `${w.line}:${w.column} ${w.message}`),
  };
}

function issuesOf(text: string): readonly ConfigIssue[] {
  try {
    parseConfigText(text, FILE, V4);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.issues;
  }
  assert.fail(`expected a ConfigError for ${JSON.stringify(text)}`);
}

const DEFAULTS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];

describe('merge keys (<<) are applied as go-yaml v2 applies them', () => {
  const cases: { name: string; text: string; cidrs?: string[]; cidrLimit?: number; masqLinkLocal?: boolean; warnings?: RegExp[] }[] = [
    { name: 'a top-level merge of a flow mapping', text: '<<: {cidrLimit: 10, masqLinkLocal: true}\n', cidrLimit: 10, masqLinkLocal: true },
    { name: 'a top-level merge of a block mapping', text: '<<:\n  nonMasqueradeCIDRs: [198.51.100.0/24]\n  cidrLimit: 10\n', cidrs: ['198.51.100.0/24'], cidrLimit: 10 },
    { name: 'a key after the merge replaces the merged one', text: '<<: {cidrLimit: 3}\ncidrLimit: 5\n', cidrLimit: 5 },
    {
      name: 'a merge replaces a key written before it (v2; YAML merge rules would keep 5), with a warning',
      text: 'cidrLimit: 5\n<<: {cidrLimit: 3}\n',
      cidrLimit: 3,
      warnings: [/^1:1 "cidrLimit" is replaced by the merge key "<<" after it \(line 2\): the reference agent's YAML reader \(go-yaml v2\) lets a later merge win/],
    },
    { name: 'in a list of mappings the first wins', text: '<<: [{cidrLimit: 3}, {cidrLimit: 4, masqLinkLocal: true}]\n', cidrLimit: 3, masqLinkLocal: true },
    { name: 'two merge keys, in order', text: '<<: {cidrLimit: 3}\n<<: {cidrLimit: 4}\n', cidrLimit: 4 },
    { name: 'an empty list merges nothing', text: '<<: []\ncidrLimit: 7\n', cidrLimit: 7 },
    { name: 'an explicit !!merge tag', text: '!!merge <<: {cidrLimit: 9}\n', cidrLimit: 9 },
    { name: 'a merge inside a merged mapping', text: '<<: {<<: {cidrLimit: 9, masqLinkLocal: true}, cidrLimit: 8}\n', cidrLimit: 8, masqLinkLocal: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const v = valuesOf(c.text);
      assert.deepEqual(v.cidrs, c.cidrs ?? DEFAULTS);
      assert.equal(v.cidrLimit, c.cidrLimit ?? 64);
      assert.equal(v.masqLinkLocal, c.masqLinkLocal ?? false);
      assert.equal(v.warnings.length, c.warnings?.length ?? 0, v.warnings.join('\n'));
      c.warnings?.forEach((w, i) => assert.match(v.warnings[i]!, w));
    });
  }

  it('in snat items, through an alias: the merged keys, a later key replacing them, and a key before the merge replaced', () => {
    const text = [
      'snat:',
      '  - &base {cidrs: [203.0.113.0/24], toSource: 192.0.2.9}',
      '  - <<: *base',
      '    cidrs: [198.51.100.0/24]',
      '  - cidrs: [192.0.2.128/25]',
      '    <<: {cidrs: [192.0.2.64/26], toSource: 192.0.2.10}',
      '',
    ].join('\n');
    const { config } = parseConfigText(text, FILE, V4);
    assert.deepEqual(
      (config.snat ?? []).map((e) => [e.text, e.toSourceText]),
      [
        ['203.0.113.0/24', '192.0.2.9'],
        ['198.51.100.0/24', '192.0.2.9'],
        ['192.0.2.64/26', '192.0.2.10'],
      ],
    );
  });

  it('a bad value that came through a merge is reported where it is written', () => {
    const issues = issuesOf('snat:\n  - <<: {cidrs: [10.0.0.1/8], toSource: 192.0.2.9}\n');
    assert.deepEqual(
      issues.map((i) => [i.path, i.line, i.column]),
      [['snat[0].cidrs[0]', 2, 18]],
    );
    assert.match(issues[0]!.message, /CIDR "10\.0\.0\.1\/8" is not aligned/);
  });

  const refused: { name: string; text: string; at: [number, number]; got: string }[] = [
    { name: 'a number', text: '<<: 5\n', at: [1, 5], got: 'a number' },
    { name: 'null', text: '<<:\ncidrLimit: 5\n', at: [1, 4], got: 'null (no value)' },
    { name: 'a list holding a string', text: '<<: [{cidrLimit: 3}, x]\n', at: [1, 22], got: 'a string' },
    { name: 'an alias of a list (v2 takes lists written in place only)', text: 'nonMasqueradeCIDRs: &l [10.0.0.0/8]\n<<: *l\n', at: [2, 5], got: 'a list' },
    { name: 'a number in a snat item', text: 'snat:\n  - <<: 3\n    cidrs: [198.51.100.0/24]\n', at: [2, 9], got: 'a number' },
  ];
  for (const r of refused) {
    it(`a merge of ${r.name} is refused as v2 refuses it, naming "<<" and where`, () => {
      const issues = issuesOf(r.text);
      assert.equal(issues.length, 1, JSON.stringify(issues));
      const [issue] = issues;
      assert.deepEqual([issue!.line, issue!.column], r.at);
      assert.match(issue!.message, /^the merge key "<<" needs a mapping, an alias of one, or a list of those; got /);
      assert.ok(issue!.message.includes(`got ${r.got} `), issue!.message);
      assert.ok(issue!.message.includes('"map merge requires map or sequence of maps as the value"'), issue!.message);
      assert.ok(!issue!.message.includes('Symbol'), issue!.message);
    });
  }

  it('a quoted "<<" is an ordinary key (v2 merges only a plain or !!merge-tagged one): unknown, named as written', () => {
    const issues = issuesOf('"<<": {cidrLimit: 5}\n');
    assert.equal(issues.length, 1);
    assert.equal(issues[0]!.path, '<<');
    assert.match(issues[0]!.message, /^unknown key "<<"\. Known keys: /);
  });

  it('a plain << as a value is the string "<<"', () => {
    const issues = issuesOf('nonMasqueradeCIDRs: [<<]\n');
    assert.match(issues[0]!.message, /^CIDR "<<" could not be parsed/);
  });
});

describe('line breaks are those go-yaml v2 knows: LF, CRLF, CR, NEL, LS, PS', () => {
  const BREAKS: Record<string, string> = { CR: '\r', NEL: '\u0085', LS: '\u2028', PS: '\u2029', 'CRLF and CR mixed': '\r\n' };
  for (const [name, eol] of Object.entries(BREAKS)) {
    const at = (i: number) => (name === 'CRLF and CR mixed' && i % 2 === 1 ? '\r' : eol);
    const lines = ['# pods and the office', 'nonMasqueradeCIDRs:', '  - 10.244.0.0/16 # pods', '  - 198.51.100.0/24', 'cidrLimit: 5', 'masqLinkLocal: true', ''];
    const text = lines.map((l, i) => (i === lines.length - 1 ? l : l + at(i))).join('');

    it(`${name}: every key and list item is read, comments end at the break`, () => {
      const v = valuesOf(text);
      assert.deepEqual(v.cidrs, ['10.244.0.0/16', '198.51.100.0/24']);
      assert.equal(v.cidrLimit, 5);
      assert.equal(v.masqLinkLocal, true);
    });

    it(`${name}: positions count lines as v2 does`, () => {
      const issues = issuesOf(text.replace('198.51.100.0/24', '198.51.100.0/33'));
      assert.deepEqual(
        issues.map((i) => [i.path, i.line, i.column]),
        [['nonMasqueradeCIDRs[1]', 4, 5]],
      );
    });

    it(`${name}: the plain reader and the yaml library agree`, () => {
      assert.deepEqual(parseConfigFragment(text, FILE, V4), parseFragmentWithYaml(text, FILE, V4));
    });
  }

  it('the plain reader still takes a CR-separated config itself (no fall back to the library)', () => {
    assert.notEqual(readPlainFragment('nonMasqueradeCIDRs:\r  - 10.244.0.0/16\rcidrLimit: 5\r', FILE, V4), undefined);
  });

  it('a break inside a quoted value folds it, as v2 folds it: the value is refused, not cut at the break', () => {
    const issues = issuesOf('nonMasqueradeCIDRs: ["10.244.0.0/16\u2028  198.51.100.0/24"]\n');
    assert.equal(issues.length, 1);
    assert.match(issues[0]!.message, /^CIDR "10\.244\.0\.0\/16 198\.51\.100\.0\/24" could not be parsed/);
  });

  describe('a text that starts with "{" is JSON to the reference (Go encoding/json)', () => {
    it('a CR between tokens is white space', () => {
      const v = valuesOf('{"nonMasqueradeCIDRs": ["198.51.100.0/24"],\r"cidrLimit": 5}\r');
      assert.deepEqual([v.cidrs, v.cidrLimit], [['198.51.100.0/24'], 5]);
    });
    for (const [name, ch, code] of [
      ['NEL', '\u0085', 'U+0085'],
      ['LS', '\u2028', 'U+2028'],
      ['PS', '\u2029', 'U+2029'],
    ] as const) {
      it(`${name} anywhere is refused, as Go refuses it, with where and why`, () => {
        for (const text of [`{"cidrLimit": 5,${ch}"masqLinkLocal": true}`, `${ch}{"cidrLimit": 5}`, `\n  {"cidrLimit": 5,\n ${ch}"masqLinkLocal": true}`]) {
          const issues = issuesOf(text);
          assert.equal(issues.length, 1, JSON.stringify(text));
          const line = text.slice(0, text.indexOf(ch)).split('\n');
          assert.deepEqual([issues[0]!.line, issues[0]!.column], [line.length, line[line.length - 1]!.length + 1], JSON.stringify(text));
          assert.ok(issues[0]!.message.startsWith(`${name} (${code}`), issues[0]!.message);
          assert.match(
            issues[0]!.message,
            /in a config that starts with "\{": the reference agent reads such a config as JSON \(Go's encoding\/json\), which refuses this character; replace it with a plain line break \(LF\)$/,
          );
        }
      });
    }
  });
});

describe('1:30 is a string (go-yaml v2 has no base-60 numbers), wherever it stands', () => {
  it('cidrLimit: 1:10 is refused (the reference cannot read a string into an int), not read as 70', () => {
    const issues = issuesOf('cidrLimit: 1:10\n');
    assert.deepEqual(
      issues.map((i) => [i.path, i.line, i.column, i.message]),
      [['cidrLimit', 1, 12, 'expected a non-negative integer, got string "1:10"']],
    );
  });

  it('resyncInterval: 1:10 is a duration string that Go refuses', () => {
    const issues = issuesOf('resyncInterval: 1:10\n');
    assert.deepEqual(
      issues.map((i) => [i.path, i.message]),
      [['resyncInterval', 'time: unknown unit ":" in duration "1:10" (write a Go duration such as "60s", "1m30s" or "500ms")']],
    );
  });

  it('a list item 1:10, in flow and block lists, is a CIDR string that does not parse', () => {
    for (const text of ['nonMasqueradeCIDRs: [1:10]\n', 'nonMasqueradeCIDRs:\n  - 1:10\n', 'nonMasqueradeCIDRs:\n  - 190:20:30.15\n']) {
      const issues = issuesOf(text);
      assert.equal(issues.length, 1, JSON.stringify(text));
      assert.match(issues[0]!.message, /^CIDR "(1:10|190:20:30\.15)" could not be parsed, invalid CIDR address/, JSON.stringify(text));
    }
  });

  it('masqLinkLocal: 1:10 is a string, not a boolean', () => {
    assert.match(issuesOf('masqLinkLocal: 1:10\n')[0]!.message, /^expected true or false.*got string "1:10"|got string "1:10"/);
  });
});

describe('Go integer prefixes in either case are integers, as go-yaml v2 reads them with strconv.ParseInt(s, 0, 64)', () => {
  for (const [written, value] of [
    ['0o100', 64],
    ['0O100', 64],
    ['0o1_00', 64],
    ['+0o100', 64],
    ['0X40', 64],
    ['0B1000000', 64],
    ['0x40', 64],
    ['0100', 64],
    ['0b1000000', 64],
  ] as const) {
    it(`cidrLimit: ${written} is ${value}`, () => {
      assert.equal(valuesOf(`cidrLimit: ${written}\n`).cidrLimit, value);
    });
  }

  it('a prefix without digits stays a string (ParseInt refuses it, so v2 keeps the text)', () => {
    for (const written of ['0o', '0O_', '0X', '0o8']) {
      assert.equal(issuesOf(`cidrLimit: ${written}\n`)[0]!.message, `expected a non-negative integer, got string "${written}"`, written);
    }
  });
});
