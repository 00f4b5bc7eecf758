// Fuzz: whatever text a user (or a broken tool) puts in the config file, parseConfigText either
// returns a config or throws ConfigError with located issues. Never a crash of another kind,
// which the agent would not know to turn into "keep the last good config".
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ConfigError } from '../../src/errors.js';
import { parseConfigText } from '../../src/config/parse.js';
import type { ConfigOptions } from '../../src/config/config.js';

const SEED = 20261126;

function check(text: string, opts: ConfigOptions): void {
  try {
    const { config } = parseConfigText(text, '/fuzz', opts);
    assert.ok(config.resyncIntervalMs >= 1);
    assert.ok(config.nonMasqueradeCIDRs.length <= config.cidrLimit);
    if (!opts.enableIPv6) assert.ok(config.nonMasqueradeCIDRs.every((e) => e.cidr.family === 'ipv4'));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    assert.ok(err.issues.length > 0);
    for (const issue of err.issues) {
      assert.equal(issue.source, '/fuzz');
      assert.equal(typeof issue.message, 'string');
      assert.ok(issue.message.length > 0);
    }
  }
}

const arbOpts = fc.record({ enableIPv6: fc.boolean(), nomasqAllReservedRanges: fc.boolean() });

const cidrLike = fc.oneof(
  fc.constantFrom('10.0.0.0/8', '10.0.0.1/8', 'fc00::/7', '::ffff:10.0.0.0/104', '010.0.0.0/8', 'abcdefg', '', '-', '~', 'null', '[]', '{}'),
  fc.tuple(fc.nat(300), fc.nat(300), fc.nat(300), fc.nat(300), fc.nat(40)).map(([a, b, c, d, p]) => `${a}.${b}.${c}.${d}/${p}`),
  fc.tuple(fc.array(fc.nat(0x1ffff), { maxLength: 9 }), fc.nat(140)).map(([g, p]) => `${g.map((x) => x.toString(16)).join(':')}::/${p}`),
  fc.string({ maxLength: 20 }),
);
const scalar = fc.oneof(
  fc.constantFrom('yes', 'no', 'on', 'off', 'true', 'false', '60s', '1m30s', '0s', '-1s', '60', '1d', '0x10', '017', '1:30', '2001-12-14', '.inf', '*a', '&a x', '!!binary aGk=', '"60s"', "'x'", '|', '>'),
  fc.integer({ min: -5, max: 200 }).map(String),
  fc.string({ maxLength: 12 }),
);
const key = fc.oneof(
  fc.constantFrom('nonMasqueradeCIDRs', 'cidrLimit', 'masqLinkLocal', 'masqLinkLocalIPv6', 'resyncInterval', 'NonMasqueradeCIDRs', 'nonMasqueradeCIDR', '<<', '? x', '"quoted"'),
  fc.string({ maxLength: 10 }),
);
const yamlDoc = fc
  .array(
    fc.oneof(
      fc.tuple(key, scalar).map(([k, v]) => `${k}: ${v}`),
      fc.tuple(key, fc.array(cidrLike, { maxLength: 6 })).map(([k, items]) => `${k}:\n${items.map((i) => `  - ${i}`).join('\n')}`),
      fc.tuple(key, fc.array(cidrLike, { maxLength: 6 })).map(([k, items]) => `${k}: [${items.join(', ')}]`),
      fc.constantFrom('# comment', '---', '...', '', '  ', '\t', '- x', '{', '}', 'key:', '  -'),
    ),
    { maxLength: 8 },
  )
  .map((lines) => lines.join('\n'));
const jsonDoc = fc
  .dictionary(key, fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.array(cidrLike, { maxLength: 5 }), scalar), { maxKeys: 6 })
  .map((o) => JSON.stringify(o));

/** Mutates a valid document: delete, duplicate or replace a slice, or insert special characters. */
const mutated = fc
  .tuple(
    fc.oneof(yamlDoc, jsonDoc),
    fc.array(
      fc.tuple(fc.nat(), fc.nat(8), fc.constantFrom('', ':', '-', '[', ']', '{', '}', '"', "'", '\t', '\n', '  ', '#', '&', '*', '!', '%', '@', '`', '\u0000', '\ufeff', 'µ')),
      { maxLength: 4 },
    ),
  )
  .map(([text, edits]) =>
    edits.reduce((t, [at, len, insert]) => {
      const i = t.length === 0 ? 0 : at % t.length;
      return t.slice(0, i) + insert + t.slice(i + len);
    }, text),
  );

describe('parseConfigText never throws anything but ConfigError', () => {
  it('random YAML-shaped documents', () => {
    fc.assert(fc.property(yamlDoc, arbOpts, (t, o) => check(t, o)), { seed: SEED, numRuns: 2000 });
  });
  it('random JSON documents', () => {
    fc.assert(fc.property(jsonDoc, arbOpts, (t, o) => check(t, o)), { seed: SEED + 1, numRuns: 1500 });
  });
  it('mutated documents', () => {
    fc.assert(fc.property(mutated, arbOpts, (t, o) => check(t, o)), { seed: SEED + 2, numRuns: 2500 });
  });
  it('arbitrary strings', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), arbOpts, (t, o) => check(t, o)), { seed: SEED + 3, numRuns: 1500 });
  });
  it('alias expansion is bounded (billion laughs)', () => {
    const lines = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++) lines.push(`${'abcdefghij'[i]}: &${'abcdefghij'[i]} [${Array(10).fill(`*${'abcdefghij'[i - 1]}`).join(', ')}]`);
    lines.push('nonMasqueradeCIDRs: *j');
    check(lines.join('\n'), { enableIPv6: false, nomasqAllReservedRanges: false });
  });
});
