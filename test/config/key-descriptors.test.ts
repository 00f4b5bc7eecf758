// Every key descriptor (keys.ts) is covered by the config hash, merge, the manifest relocation,
// the position index and the outputs (validate's JSON and summary, the "config applied" log
// fields), with nothing written per key: a key any of them skipped fails here. SAMPLES is typed
// by ConfigKey, so a new descriptor does not compile until it has a sample, and is then checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { defaultConfig } from '../../src/config/merge.js';
import { hashConfig, stableConfigJson } from '../../src/config/key-values.js';
import { configValues, loggedLists } from '../../src/config/key-values.js';
import { CONFIG_KEYS, KEYS, LIST_KEYS, type ConfigKey, type KeyDescriptor } from '../../src/config/keys.js';
import { readManifest } from '../../src/config/manifest.js';
import { mergeConfigFragments } from '../../src/config/merge.js';
import { parseConfigFragment, parseConfigText } from '../../src/config/parse.js';
import { ConfigError } from '../../src/errors.js';
import { cli, tempDir } from '../cli/cli-helpers.js';

const OPTS = { enableIPv6: true, nomasqAllReservedRanges: false };

/** Two different non-default values of each key, as YAML flow text. */
const SAMPLES: { readonly [K in ConfigKey]: readonly [string, string] } = {
  nonMasqueradeCIDRs: ['[10.0.0.0/8]', '[192.0.2.0/24]'],
  cidrLimit: ['100', '200'],
  masqLinkLocal: ['true', 'false'],
  masqLinkLocalIPv6: ['true', 'false'],
  resyncInterval: ['90s', '2m'],
  masqueradeCIDRs: ['[10.9.0.0/16]', '[10.8.0.0/16]'],
  snat: ['[{cidrs: [198.51.100.0/24], toSource: 192.0.2.9}]', '[{cidrs: [203.0.113.0/24], toSource: 192.0.2.9}]'],
  masqueradeSourceCIDRs: ['[10.244.0.0/16]', '[10.245.0.0/16]'],
};

const desc = (key: ConfigKey): KeyDescriptor => KEYS[key];
/** How files merge the key: lists concatenate, every other key must agree. */
const mergeRule = (key: ConfigKey): 'concat' | 'agree' => ((LIST_KEYS as readonly ConfigKey[]).includes(key) ? 'concat' : 'agree');
const fragment = (text: string, source: string) => {
  const r = parseConfigFragment(text, source, OPTS);
  assert.deepEqual(r.issues, [], text);
  return r.fragment;
};

for (const key of CONFIG_KEYS) {
  const [a, b] = SAMPLES[key];
  const textA = `${key}: ${a}\n`;

  test(`${key}: enters the config hash`, () => {
    const config = parseConfigText(textA, 'f', OPTS).config;
    assert.ok(key in JSON.parse(stableConfigJson(config)), stableConfigJson(config));
    assert.notEqual(hashConfig(config), hashConfig(defaultConfig(OPTS)));
    assert.notEqual(hashConfig(config), hashConfig(parseConfigText(`${key}: ${b}\n`, 'f', OPTS).config));
  });

  test(`${key}: merged across files by its rule (${mergeRule(key)})`, () => {
    const fa = fragment(textA, 'a');
    const fb = fragment(`${key}: ${b}\n`, 'b');
    if (mergeRule(key) === 'concat') {
      const merged = mergeConfigFragments([fa, fb], OPTS).config;
      const single = (t: string) => configValues(parseConfigText(`${key}: ${t}\n`, 'x', OPTS).config, 'output')[key] as unknown[];
      assert.deepEqual(configValues(merged, 'output')[key], [...single(a), ...single(b)]);
    } else {
      assert.throws(
        () => mergeConfigFragments([fa, fb], OPTS),
        (e: unknown) => e instanceof ConfigError && e.issues.some((i) => i.message.startsWith(`${key} is set to `)),
      );
      assert.deepEqual(configValues(mergeConfigFragments([fa, fa], OPTS).config, 'hash')[key], configValues(parseConfigText(textA, 'a', OPTS).config, 'hash')[key]);
    }
  });

  test(`${key}: relocated into a ConfigMap manifest`, () => {
    const manifest = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: m\ndata:\n  config: |\n    # a comment line\n    ${textA}`;
    const found = readManifest(manifest, 'm.yaml', OPTS);
    assert.ok(found && found.fragments.length === 1);
    const value = found.fragments[0]![key];
    assert.ok(value !== undefined, `${key} is carried over`);
    const items = (Array.isArray(value) ? value : [value]) as { source: string; path: string; line?: number }[];
    assert.ok(items.length > 0);
    for (const item of items) {
      assert.equal(item.source, 'm.yaml');
      assert.ok(item.path.startsWith(`data.config.${key}`), item.path);
      assert.equal(item.line, 8, 'the manifest line, not the line inside the embedded text');
    }
  });

  test(`${key}: shown by validate (JSON and summary) and the "config applied" log fields`, async () => {
    const tmp = await tempDir();
    try {
      const path = await tmp.write('ip-masq-agent', textA);
      const json = JSON.parse((await cli(['validate', '--enable-ipv6', '--output', 'json', path])).stdout);
      const config = parseConfigText(textA, path, OPTS).config;
      assert.deepEqual(json.configs[0][key], configValues(config, 'output')[key]);
      assert.notEqual(json.configs[0][key], undefined);
      const form = desc(key).summary;
      const text = (await cli(['validate', '--enable-ipv6', path])).stdout;
      if (form === undefined) assert.doesNotMatch(text, new RegExp(key));
      else if (typeof form === 'object') assert.match(text, new RegExp(`valid: .*\\b1 ${form.count}\\b`));
      // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a key summarised as `key value` is a scalar (keys.ts)
      else assert.match(text, new RegExp(`valid: .*${key} ${String(config[key])}`));
      const logged = { ...config, ...loggedLists(config, 100) } as Record<string, unknown>;
      // What a log line holds is JSON: the key's value in its output form, never raw entries.
      assert.deepEqual(logged[key], configValues(config, 'output')[key]);
    } finally {
      await tmp.remove();
    }
  });

  if (mergeRule(key) === 'concat') {
    test(`${key}: every entry's line:column is indexed for messages`, async () => {
      const tmp = await tempDir();
      try {
        const path = await tmp.write('ip-masq-agent', textA);
        const r = await cli(['explain', '--enable-ipv6', '--config', path, '--output', 'json', '198.51.100.1', '10.9.0.1', '10.0.0.1']);
        assert.equal(r.code, 0, r.stderr);
        // Any answer decided by an entry of this list names its position.
        for (const answer of JSON.parse(r.stdout) as { match?: { list: string; line?: number } }[]) {
          if (answer.match?.list === key) assert.equal(answer.match.line, 1);
        }
      } finally {
        await tmp.remove();
      }
    });
  }
}

test('a key left out while empty (omitWhenEmpty) keeps the hash of a config without it, so an upgrade re-applies nothing', () => {
  const base = parseConfigText('nonMasqueradeCIDRs: [10.0.0.0/8]\n', 'f', OPTS).config;
  for (const key of CONFIG_KEYS.filter((k) => desc(k).omitWhenEmpty)) {
    const empty = parseConfigText(`nonMasqueradeCIDRs: [10.0.0.0/8]\n${key}: []\n`, 'f', OPTS).config;
    assert.equal(hashConfig(empty), hashConfig(base), key);
    assert.equal(key in empty, false);
  }
});

test('hash values are those earlier releases computed (the hash decides whether a resync re-applies)', () => {
  const hash = (text: string) => hashConfig(parseConfigText(text, 'f', OPTS).config);
  assert.equal(hashConfig(defaultConfig(OPTS)), 'de5916f9f64d5a7b00c23e0a71e7cd8e6a1d55dc1ce66bc04250d1160de17813');
  assert.equal(hash('nonMasqueradeCIDRs: [10.0.0.0/8]'), '74a72a2e6ef5062e3eaf2f658e8902084155210628b98e57b896fbf94165e8a5');
  assert.equal(hash('nonMasqueradeCIDRs: []\nmasqLinkLocal: true\nmasqLinkLocalIPv6: true\ncidrLimit: 7\nresyncInterval: 90s'), '0e956ea6db3d48974b87007f01f28e1d7af09f04b4d938c693ec1b4cc629c98b');
  assert.equal(
    hash(
      'nonMasqueradeCIDRs: [0.0.0.0/0, ::/0]\nmasqueradeCIDRs: [10.9.0.0/16, 169.254.169.254/32]\nsnat: [{cidrs: [198.51.100.0/24, 203.0.113.0/24], toSource: 192.0.2.9}, {cidrs: ["2001:db8::/32"], toSource: "2001:db8:1::1"}]\nmasqueradeSourceCIDRs: [10.244.0.0/16]',
    ),
    '8fca48ec40f057e5dd769dac5135edad496f616f7a893aef2894ce4cd60b8011',
  );
  assert.equal(hash('masqueradeSourceCIDRs: [10.244.0.0/16]'), '859f865df93a20655b31dd1917792ffd1c72d192f8b5959a8ba95e5ab25a8c90');
});

test('the "config applied" fields keep every list short: a long list of any key shows its first 10 and a count', () => {
  const list = Array.from({ length: 300 }, (_, i) => `10.9.${i}.0/24`.replace(/\.(\d{3})\./, (_m, n: string) => `.${Number(n) % 256}.`));
  const unique = [...new Set(list)];
  const config = parseConfigText(`cidrLimit: 1000\nnonMasqueradeCIDRs: []\nmasqueradeCIDRs: [${unique.join(', ')}]\n`, 'f', OPTS).config;
  const logged = { ...config, ...loggedLists(config, 100) } as Record<string, unknown>;
  assert.deepEqual(logged['masqueradeCIDRs'], unique.slice(0, 10));
  assert.equal(logged['masqueradeCIDRCount'], unique.length);
  assert.ok(JSON.stringify(logged, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)).length < 2000);
});
