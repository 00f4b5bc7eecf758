import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configSchema, renderConfigJsonSchema } from '../../src/config/schema.js';
import { CONFIG_KEYS, GO_DURATION_PATTERN } from '../../src/config/keys.js';
import { findRepoRoot, readGoTable } from '../fixtures/go-tsv.js';

describe('ip-masq-agent.schema.json', () => {
  it('is exactly what the zod schema generates (regenerate: npm run build && node scripts/gen-schema.mjs)', () => {
    const committed = readFileSync(join(findRepoRoot(), 'ip-masq-agent.schema.json'), 'utf8');
    assert.equal(committed, renderConfigJsonSchema());
  });
  it('describes every key, forbids unknown keys', () => {
    const schema = JSON.parse(renderConfigJsonSchema()) as {
      properties: Record<string, { title?: string; description?: string }>;
      additionalProperties: boolean;
      title: string;
    };
    assert.deepEqual(Object.keys(schema.properties), [...CONFIG_KEYS]);
    for (const key of CONFIG_KEYS) {
      assert.ok(schema.properties[key]?.title, `${key} has a title`);
      assert.ok(schema.properties[key]?.description, `${key} has a description`);
    }
    assert.equal(schema.additionalProperties, false);
  });
});

describe('the schema duration pattern matches what Go parses', () => {
  const pattern = new RegExp(GO_DURATION_PATTERN);
  for (const { input, cols } of readGoTable('go-durations.tsv')) {
    const goAccepts = cols[0] !== 'error';
    // Overflow is the one thing a pattern cannot see.
    const overflow = !goAccepts && (cols[1] ?? '').startsWith('time: invalid duration') && /^[0-9][0-9hmnsu.]{15,}$/.test(input);
    if (overflow) continue;
    it(`${JSON.stringify(input)} ${goAccepts ? 'matches' : 'does not match'}`, () => {
      assert.equal(pattern.test(input), goAccepts);
    });
  }
});

describe('configSchema', () => {
  it('accepts a full config and rejects unknown keys', () => {
    assert.equal(
      configSchema.safeParse({
        nonMasqueradeCIDRs: ['10.0.0.0/8'],
        cidrLimit: 10,
        masqLinkLocal: true,
        masqLinkLocalIPv6: false,
        resyncInterval: '1m30s',
      }).success,
      true,
    );
    assert.equal(configSchema.safeParse({ nonMasqueradeCIDR: [] }).success, false);
  });
});
