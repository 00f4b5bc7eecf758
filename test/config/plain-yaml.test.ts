// The fast reader of the plain config subset must read every text exactly as the yaml library
// does (values, positions, and every message, mistakes included: it reports them itself), and
// must actually take the common forms, or it saves nothing.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseConfigFragment, parseFragmentWithYaml } from '../../src/config/parse.js';
import { parseDocument } from 'yaml';
import { readPlainYaml, typePlainScalar } from '../../src/config/plain-yaml.js';
import { readPlainFragment } from '../../src/config/fragment.js';
import { goYamlTags } from '../../src/config/go-yaml.js';
import type { ConfigOptions } from '../../src/config/config.js';
import { MAX_CONFIG_NODES } from '../../src/limits.js';

const SEED = 20261201;
const V4: ConfigOptions = { enableIPv6: false, nomasqAllReservedRanges: false };
const V6: ConfigOptions = { enableIPv6: true, nomasqAllReservedRanges: false };

/** Both readings of one text, compared whole: fragment (with line:column), errors and warnings. */
function assertSameAsLibrary(text: string, opts: ConfigOptions): void {
  assert.deepStrictEqual(parseConfigFragment(text, '/cfg', opts), parseFragmentWithYaml(text, '/cfg', opts), JSON.stringify(text));
}

const cidr = fc.oneof(
  fc.constantFrom(
    '10.0.0.0/8',
    '192.168.0.0/16',
    '10.0.0.1/8',
    '010.0.0.0/8',
    '10.0.0.0/08',
    '0.0.0.0/0',
    '::/0',
    'fd00::/8',
    'fe80::',
    '2001:db8::/32',
    '2001:DB8::/32',
    '::ffff:10.0.0.0/104',
    '1:2/3',
    'a:b',
    '10.0.0.0/33',
    'x',
    '-',
    ':',
    '10.0.0.0/8:',
    '1.5',
    'yes',
    'null',
    '~',
    '0x10',
    '1:30',
    '2001-12-14',
  ),
  fc.tuple(fc.nat(256), fc.nat(256), fc.nat(256), fc.nat(256), fc.nat(33)).map(([a, b, c, d, p]) => `${a}.${b}.${c}.${d}/${p}`),
);
const quoted = (s: string) => fc.constantFrom(s, `"${s}"`, `'${s}'`);
const item = cidr.chain(quoted);
const scalarValue = fc.constantFrom(
  '60s',
  '1m30s',
  '2µs',
  '"60s"',
  "'5s'",
  '0',
  '64',
  '100000',
  '1e3',
  '0x10',
  '1:30',
  '-1',
  'true',
  'yes',
  'off',
  'Null',
  '~',
  '.inf',
  '9007199254740993',
  '192.0.2.9',
  '2001:db8::9',
  '1:2:3:4:5:6:7:8',
  'x y',
  '"a\\"b"',
);
const key = fc.constantFrom(
  'nonMasqueradeCIDRs',
  'masqueradeCIDRs',
  'masqueradeSourceCIDRs',
  'cidrLimit',
  'resyncInterval',
  'masqLinkLocal',
  'masqLinkLocalIPv6',
  'snat',
  'NonMasqueradeCIDRs',
  'nonMasqCIDRs',
  'yes',
  'a',
);
const comment = fc.constantFrom('', '  # note', ' #x', '#x', '\t');
const indent = fc.constantFrom('', ' ', '  ', '    ');

const blockList = fc.tuple(indent, fc.array(fc.tuple(item, comment), { maxLength: 5 })).map(([ind, items]) => items.map(([i, c]) => `${ind}- ${i}${c}`).join('\n'));
const flowList = fc.array(item, { maxLength: 5 }).map((items) => `[${items.join(', ')}]`);
const snatItem = fc
  .tuple(
    fc.oneof(
      flowList,
      blockList.map((l) => `\n${l.replace(/^/gm, '    ')}`),
    ),
    scalarValue,
    fc.boolean(),
  )
  .map(([cidrs, to, cidrsFirst]) => (cidrsFirst ? `- cidrs: ${cidrs}\n  toSource: ${to}` : `- toSource: ${to}\n  cidrs: ${cidrs}`));
const entry = fc.oneof(
  fc.tuple(key, scalarValue, comment).map(([k, v, c]) => `${k}: ${v}${c}`),
  fc.tuple(key, flowList, comment).map(([k, v, c]) => `${k}: ${v}${c}`),
  fc.tuple(key, comment, blockList).map(([k, c, l]) => `${k}:${c}\n${l}`),
  fc.array(snatItem, { minLength: 1, maxLength: 3 }).map((items) => `snat:\n${items.join('\n')}`),
  fc.constantFrom('# comment', '', '   ', '---', 'key:', '  - 10.0.0.0/8', 'a: &x [10.0.0.0/8]', 'b: *x', 'c: !!str 1', 'd: |\n  x', 'nonMasqueradeCIDRs: {a: 1}'),
);
/** Every line break go-yaml v2 knows: LF, CRLF, and CR, NEL, LS, PS, which the readers see as LF. */
const EOLS = ['\n', '\r\n', '\r', '\u0085', '\u2028', '\u2029'] as const;
const doc = fc.tuple(fc.array(entry, { maxLength: 6 }), fc.constantFrom(...EOLS), fc.boolean()).map(([entries, eol, final]) => entries.join('\n').replace(/\n/g, eol) + (final ? eol : ''));

/** A document with a few characters inserted or removed anywhere. */
const mutated = fc
  .tuple(doc, fc.array(fc.tuple(fc.nat(), fc.nat(3), fc.constantFrom('', ' ', '-', ':', '#', '"', "'", '[', ']', ',', '\n', '\t', '/', 'µ', '\ufeff', ...EOLS, '<<: ', '&a ', '*a')), { maxLength: 3 }))
  .map(([text, edits]) => edits.reduce((t, [at, len, ins]) => (t.length === 0 ? ins : t.slice(0, at % t.length) + ins + t.slice((at % t.length) + len)), text));

const jsonCidr = fc.oneof(cidr, fc.constantFrom('a\\b', 'tab\there', 'é'));
const jsonValue = fc.oneof(
  fc.array(jsonCidr, { maxLength: 5 }),
  fc.array(fc.record({ cidrs: fc.array(jsonCidr, { maxLength: 3 }), toSource: fc.constantFrom('192.0.2.9', '2001:db8::9', 'x') }, { requiredKeys: [] }), { maxLength: 2 }),
  fc.constantFrom(0, 64, 100000, 1e21, -1, 1.5, 2 ** 53 + 2, true, false, null, '60s', '1m', 'yes', [], {}, [[]], [1], { a: [['10.0.0.0/8']] }),
);
const jsonDoc = fc
  .tuple(fc.dictionary(key, jsonValue, { maxKeys: 5 }), fc.constantFrom(undefined, 0, 1, 2, 4), fc.constantFrom(...EOLS), fc.boolean())
  .map(([o, indent, eol, final]) => JSON.stringify(o, null, indent).replace(/\n/g, eol) + (final ? eol : ''));
const mutatedJson = fc
  .tuple(jsonDoc, fc.array(fc.tuple(fc.nat(), fc.nat(3), fc.constantFrom('', ' ', ':', ',', '"', '[', ']', '{', '}', '\n', '\t', '\\', '1', 'e', ...EOLS)), { maxLength: 3 }))
  .map(([text, edits]) => edits.reduce((t, [at, len, ins]) => (t.length === 0 ? ins : t.slice(0, at % t.length) + ins + t.slice((at % t.length) + len)), text));

describe('the plain-subset reader', () => {
  it('reads random JSON configs exactly as the yaml library does', () => {
    fc.assert(
      fc.property(jsonDoc, fc.boolean(), (t, v6) => assertSameAsLibrary(t, v6 ? V6 : V4)),
      { seed: SEED + 2, numRuns: 3000 },
    );
  });

  it('reads mutated JSON exactly as the yaml library does', () => {
    fc.assert(
      fc.property(mutatedJson, fc.boolean(), (t, v6) => assertSameAsLibrary(t, v6 ? V6 : V4)),
      { seed: SEED + 3, numRuns: 3000 },
    );
  });

  it('takes JSON configs, one line or pretty-printed', () => {
    const config = { nonMasqueradeCIDRs: ['10.0.0.0/8', 'fd00::/8'], cidrLimit: 100, snat: [{ cidrs: ['203.0.113.0/24'], toSource: '192.0.2.9' }] };
    for (const text of [JSON.stringify(config), `${JSON.stringify(config, null, 2)}\n`, JSON.stringify(config, null, 4).replace(/\n/g, '\r\n'), '{}']) {
      assert.notEqual(readPlainYaml(text), undefined, JSON.stringify(text));
    }
    for (const text of [
      '{"nonMasqueradeCIDRs": ["a\\u0041"]}',
      '{\t"cidrLimit": 1}',
      '{"cidrLimit": 1, "cidrLimit": 2}',
      '{"a"\n: 1}',
      '[]',
      '{"nonMasqueradeCIDRs": [1]}',
      `{"a": ${'['.repeat(5)}${']'.repeat(5)}}`,
    ]) {
      assert.equal(readPlainYaml(text), undefined, JSON.stringify(text));
    }
  });

  it('reads random config documents exactly as the yaml library does', () => {
    fc.assert(
      fc.property(doc, fc.boolean(), (t, v6) => assertSameAsLibrary(t, v6 ? V6 : V4)),
      { seed: SEED, numRuns: 3000 },
    );
  });

  it('reads mutated documents exactly as the yaml library does', () => {
    fc.assert(
      fc.property(mutated, fc.boolean(), (t, v6) => assertSameAsLibrary(t, v6 ? V6 : V4)),
      { seed: SEED + 1, numRuns: 3000 },
    );
  });

  it('types a plain scalar as the yaml library does (YAML 1.1), or leaves it to the library', () => {
    const library = (raw: string): { value: unknown } | undefined => {
      const d = parseDocument(raw, { version: '1.1', customTags: goYamlTags });
      return d.errors.length > 0 || d.warnings.length > 0 ? undefined : { value: d.toJS() as unknown };
    };
    const check = (raw: string): void => {
      const ours = typePlainScalar(raw);
      if (ours !== undefined) assert.deepStrictEqual(ours, library(raw), JSON.stringify(raw));
    };
    const edges = [
      '60s',
      '1m30s',
      '2µs',
      '5μs',
      '10ns',
      '1h',
      '1d',
      '0',
      '00',
      '010',
      '09',
      '64',
      '123456789012345',
      '1234567890123456',
      '1_000',
      '1e3',
      '1E3',
      '1.',
      '1.5',
      '0x1f',
      '0x1g',
      '0b101',
      '0o7',
      '0O7',
      '0o_7',
      '0o',
      '0X1F',
      '0x1F',
      '0B11',
      '0B',
      '0o8',
      '1:30',
      '1:30s',
      '1:30.5',
      '190:20:30',
      '1:60',
      '<<',
      '2001-12-14',
      '2001-12-14t21:59:43.10-05:00',
      '2001-12-14Z',
      'y',
      'Y',
      'n',
      'N',
      'yes',
      'Yes',
      'YES',
      'yES',
      'no',
      'on',
      'ON',
      'oN',
      'off',
      'true',
      'True',
      'tRUE',
      'false',
      'FALSE',
      'null',
      'Null',
      'NULL',
      'nULL',
      '~',
      '.inf',
      '-.inf',
      '.nan',
      'NaN',
      'inf',
      'x',
      'iptables',
      'a:b',
      'a.b',
      'Z',
      'T',
      '+1',
      '-1',
      '.5',
      ':x',
      '10.0.0.0/8',
      'fd00::/8',
      '2001:db8::9',
      '192.0.2.9',
      '1.2.3.4.5',
    ];
    for (const raw of edges) check(raw);
    // Not vacuous: the forms configs are written in are typed here, not left to the library.
    for (const [raw, value] of [
      ['60s', '60s'],
      ['1m30s', '1m30s'],
      ['1:30', '1:30'],
      ['190:20:30.15', '190:20:30.15'],
      ['64', 64],
      ['true', true],
      ['off', false],
      ['iptables', 'iptables'],
      ['10.0.0.0/8', '10.0.0.0/8'],
      ['192.0.2.9', '192.0.2.9'],
      ['2001:db8::9', '2001:db8::9'],
    ] as const) {
      assert.deepStrictEqual(typePlainScalar(raw), { value }, raw);
    }
    const plainScalar = fc
      .tuple(
        fc.constantFrom(...Array.from('0123456789aAbBeEfFhmnNsStTuxXyYZ.:+-_/µ')),
        fc.string({ unit: fc.constantFrom(...Array.from('0123456789aAbBeEfFhlmnNoOrsStTuxXyYZ.:+-_/µ')), maxLength: 8 }),
      )
      .map(([a, b]) => a + b);
    fc.assert(fc.property(plainScalar, check), { seed: SEED + 4, numRuns: 20000 });
  });

  it('takes the forms configs are written in', () => {
    const forms = [
      'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - "192.168.0.0/16" # office\n',
      'nonMasqueradeCIDRs:\n- 10.0.0.0/8\n- fd00::/8\ncidrLimit: 100\n',
      "nonMasqueradeCIDRs: [10.0.0.0/8, '172.16.0.0/12']\r\nmasqLinkLocal: true\r\nresyncInterval: 60s\r\n",
      '# comment\n\nmasqueradeCIDRs: []\nsnat:\n  - cidrs: [203.0.113.0/24]\n    toSource: 192.0.2.9\n  - toSource: 2001:db8::9\n    cidrs:\n      - 2001:db8:1::/48\n',
      '',
    ];
    for (const text of forms) assert.notEqual(readPlainYaml(text), undefined, JSON.stringify(text));
  });

  it('reports the mistakes of a plain config itself (no second reading), exactly as the library reading does', () => {
    const text = 'nonMasqueradeCIDRs:\n  - 10.0.0.1/8\n  - 10.0.0.0/8\nmasqLinkLocal: maybe\nnonMasqCIDRs: []\n';
    const plain = readPlainFragment(text, '/cfg', V4);
    assert.equal(plain?.issues.length, 3, plain?.issues.map((i) => i.message).join('\n'));
    assert.deepStrictEqual(plain, parseFragmentWithYaml(text, '/cfg', V4));
  });

  it('leaves to the library what it cannot read for sure', () => {
    const others = [
      'nonMasqueradeCIDRs:\n\t- 10.0.0.0/8\n',
      'nonMasqueradeCIDRs: &a [10.0.0.0/8]\n',
      'nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n    10.1.0.0/16\n',
      'nonMasqueradeCIDRs: [10.0.0.0/8,\n  10.1.0.0/16]\n',
      'nonMasqueradeCIDRs: [10.0.0.0/8,]\n',
      '---\nnonMasqueradeCIDRs: []\n',
      'nonMasqueradeCIDRs:\n  - fe80::\n',
      'nonMasqueradeCIDRs:\n  - 1\n',
      'snat:\n  - cidrs: [10.0.0.0/8]\n    cidrs: [10.1.0.0/16]\n',
      'cidrLimit:\n',
    ];
    for (const text of others) assert.equal(readPlainYaml(text), undefined, JSON.stringify(text));
  });

  it('reads block nesting deeper than the guard allows as the library does: refused', () => {
    let text = 'snat:\n';
    for (let d = 0; d < 12; d++) text += `${'  '.repeat(d)}- a${d}:\n`;
    assertSameAsLibrary(`${text}${'  '.repeat(12)}- 10.0.0.0/8\n`, V4);
  });

  it('counts a JSON config as the library does: one value over the limit is refused', () => {
    // `{`, the key and `[` are values too.
    const text = `{"nonMasqueradeCIDRs": [${Array(MAX_CONFIG_NODES - 2)
      .fill('"10.0.0.0/8"')
      .join(',')}]}`;
    assert.match(parseConfigFragment(text, '/cfg', V4).issues[0]?.message ?? '', /more than 101,000 values/);
    assertSameAsLibrary(text, V4);
  });

  it('gives each CIDR and value the line:column where it is written', () => {
    const text = 'cidrLimit: 100\nnonMasqueradeCIDRs:\n  # two\n  -   10.0.0.0/8\n  - "10.1.0.0/16"\nmasqueradeCIDRs: [10.2.0.0/16, 10.3.0.0/16]\n';
    const { fragment, issues } = parseConfigFragment(text, '/cfg', V4);
    assert.deepEqual(issues, []);
    assert.deepEqual(
      fragment.nonMasqueradeCIDRs?.map((e) => [e.text, e.path, e.line, e.column]),
      [
        ['10.0.0.0/8', 'nonMasqueradeCIDRs[0]', 4, 7],
        ['10.1.0.0/16', 'nonMasqueradeCIDRs[1]', 5, 5],
      ],
    );
    assert.deepEqual(
      fragment.masqueradeCIDRs?.map((e) => [e.text, e.line, e.column]),
      [
        ['10.2.0.0/16', 6, 19],
        ['10.3.0.0/16', 6, 32],
      ],
    );
    assert.deepEqual([fragment.cidrLimit?.value, fragment.cidrLimit?.line, fragment.cidrLimit?.column], [100, 1, 12]);
  });
});
