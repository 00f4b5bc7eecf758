import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LineCounter } from 'yaml';
import { ConfigError } from '../../src/errors.js';
import { parseConfigText } from '../../src/config/parse.js';
import { MAX_CONFIG_NODES } from '../../src/limits.js';
import { readManifest } from '../../src/config/manifest.js';
import { MAX_ALIAS_EXPANSION, MAX_CONFIG_NESTING, parseBoundedDocument } from '../../src/config/guard.js';
import { MAX_CONFIG_MAP_KEYS } from '../../src/limits.js';

const OPTS = { enableIPv6: false, nomasqAllReservedRanges: false };

function configError(text: string): ConfigError {
  try {
    parseConfigText(text, '/c', OPTS);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e;
  }
  assert.fail('expected a ConfigError');
}

/** A value nested `depth` levels: the root mapping is level 1, so the list holds depth - 1 more. */
const nested = (depth: number): string => `nonMasqueradeCIDRs: ${'['.repeat(depth - 1)}10.0.0.0/8${']'.repeat(depth - 1)}\n`;

describe('YAML shape bounds', () => {
  it(`nesting up to ${MAX_CONFIG_NESTING} levels is read (the schema then explains what is wrong)`, () => {
    const err = configError(nested(MAX_CONFIG_NESTING));
    assert.match(err.message, /expected a CIDR string such as "10.0.0.0\/8", got a list/);
  });
  it(`level ${MAX_CONFIG_NESTING + 1} is refused, pointing at the list that goes too deep`, () => {
    const err = configError(nested(MAX_CONFIG_NESTING + 1));
    assert.equal(err.issues.length, 1);
    assert.equal(err.message, `/c:1:${20 + MAX_CONFIG_NESTING}: lists and mappings nest more than ${MAX_CONFIG_NESTING} levels deep here; a config nests at most 3`);
  });
  it('a block-style deep file points at the line where the limit is passed', () => {
    const text = Array.from({ length: 40 }, (_, i) => `${' '.repeat(i)}a:`).join('\n') + ' 1\n';
    const err = configError(text);
    assert.equal(err.issues[0]!.line, MAX_CONFIG_NESTING + 1);
  });
  it('aliases that rebuild depth past the bound are refused', () => {
    const lines = ['a0: &a0 [x]'];
    for (let i = 1; i < 30; i++) lines.push(`a${i}: &a${i} [*a${i - 1}]`);
    const err = configError(lines.join('\n'));
    assert.match(err.message, /through aliases, lists and mappings nest more than 16 levels/);
  });
  it(`aliases may add at most ${MAX_ALIAS_EXPANSION} values (billion laughs)`, () => {
    const L = 'abcdefghij';
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++)
      lines.push(
        `${L[i]}: &${L[i]} [${Array(10)
          .fill(`*${L[i - 1]}`)
          .join(', ')}]`,
      );
    lines.push('nonMasqueradeCIDRs: *j');
    const err = configError(lines.join('\n'));
    assert.match(err.message, /^\/c:3:\d+: aliases expand to more than 1000 values/);
  });
  it('an alias inside the value it names is refused', () => {
    assert.match(configError('nonMasqueradeCIDRs: &a [*a]\n').message, /^\/c:1:24: an alias refers to the value that contains it/);
  });
  it('a few aliases still work', () => {
    const { config } = parseConfigText('nonMasqueradeCIDRs: [&x 10.0.0.0/8, 192.0.2.0/24]\nresyncInterval: &r 30s\n', '/c', OPTS);
    assert.deepEqual(
      config.nonMasqueradeCIDRs.map((e) => e.text),
      ['10.0.0.0/8', '192.0.2.0/24'],
    );
  });
  it(`a mapping with more than ${MAX_CONFIG_MAP_KEYS} keys is refused before the quadratic duplicate-key check`, () => {
    const text = Array.from({ length: 50_000 }, (_, i) => `k${i}: 1`).join('\n');
    const err = configError(text);
    assert.equal(err.message, `/c:1:1: this mapping has 50000 keys, more than the ${MAX_CONFIG_MAP_KEYS} allowed here`);
  });
  it('several documents are still one MULTIPLE_DOCS error', () => {
    const r = parseBoundedDocument('a: 1\n---\nb: 2\n', { lineCounter: new LineCounter() });
    assert.ok(r.doc);
    assert.deepEqual(
      r.doc.errors.map((e) => e.code),
      ['MULTIPLE_DOCS'],
    );
  });
  it('a manifest nested too deep is not read as a manifest (the config parser then says where)', () => {
    const deep = `apiVersion: v1\nkind: ConfigMap\nmetadata: ${'['.repeat(100_000)}${']'.repeat(100_000)}\n`;
    assert.equal(readManifest(deep, '/m.yaml', OPTS), undefined);
    assert.match(configError(deep).message, /^\/c:3:\d+: lists and mappings nest more than 16 levels/);
  });
  it('a manifest of more values than a config may hold is counted before its syntax tree is built, and not read as a manifest', () => {
    const wide = `apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {config: "{}"}\nextra: [${'1,'.repeat(MAX_CONFIG_NODES)}1]\n`;
    assert.equal(readManifest(wide, '/m.yaml', OPTS), undefined);
    assert.equal(readManifest(wide.replace(/extra: .*\n/, ''), '/m.yaml', OPTS)?.fragments.length, 1);
    assert.match(configError(wide).message, /^\/c: the config holds more than 101,000 values/);
  });
});
