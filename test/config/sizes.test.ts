// The hard size limits (src/limits.ts): config bytes per file and per directory, values counted
// before parsing, CIDRs per backend, and the parse cache.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/errors.js';
import type { ConfigOptions } from '../../src/config/config.js';
import { ParseCache, loadConfig } from '../../src/config/load.js';
import { parseConfigText } from '../../src/config/parse.js';
import { countYamlNodes } from '../../src/config/guard.js';
import { MAX_CIDRS, MAX_CONFIG_BYTES, MAX_CONFIG_NODES, cidrCapForFlags, maxCidrsFor } from '../../src/limits.js';

const V4: ConfigOptions = { enableIPv6: false, nomasqAllReservedRanges: false };

let root: string;
let counter = 0;
before(async () => {
  root = await mkdtemp(join(tmpdir(), 'ip-masq-sizes-test-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A valid config of `bytes` bytes: one CIDR, then a comment line padding it out. */
function paddedConfig(bytes: number): string {
  const head = 'nonMasqueradeCIDRs: [10.0.0.0/8]\n#';
  return `${head}${'x'.repeat(bytes - head.length - 1)}\n`;
}

async function loadError(path: string, opts: ConfigOptions = V4): Promise<ConfigError> {
  const err = await loadConfig(path, opts).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
  return err;
}

/** n distinct /32s of 10.0.0.0/8. */
const cidrs = (n: number): string[] => Array.from({ length: n }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`);

describe('config file size cap', () => {
  it('reads a file of exactly the limit', async () => {
    const file = join(root, `exact-${++counter}`);
    await writeFile(file, paddedConfig(MAX_CONFIG_BYTES));
    const loaded = await loadConfig(file, V4);
    assert.deepEqual(
      loaded.config.nonMasqueradeCIDRs.map((e) => e.text),
      ['10.0.0.0/8'],
    );
  });

  it('refuses a file one byte over the limit, naming the file, its size and the limit', async () => {
    const file = join(root, `over-${++counter}`);
    await writeFile(file, paddedConfig(MAX_CONFIG_BYTES + 1));
    const err = await loadError(file);
    assert.equal(err.issues.length, 1);
    assert.equal(err.issues[0]?.source, file);
    assert.equal(err.issues[0]?.message, `config file is ${(MAX_CONFIG_BYTES + 1).toLocaleString('en')} bytes; the limit is ${MAX_CONFIG_BYTES.toLocaleString('en')} bytes`);
  });

  it('counts all files of a directory together, and names the file that goes over', async () => {
    const dir = join(root, `dir-${++counter}`);
    await mkdir(dir);
    const half = Math.floor(MAX_CONFIG_BYTES / 2) + 10;
    await writeFile(join(dir, 'ip-masq-a'), paddedConfig(half));
    await writeFile(join(dir, 'ip-masq-b'), paddedConfig(half));
    const err = await loadError(dir);
    assert.equal(err.issues[0]?.source, join(dir, 'ip-masq-b'));
    assert.match(
      err.issues[0]?.message ?? '',
      new RegExp(`with the files before it in ${dir} ${(2 * half).toLocaleString('en')} bytes; the limit is ${MAX_CONFIG_BYTES.toLocaleString('en')} bytes for all files`),
    );
  });
});

describe('values counted before parsing', () => {
  it('counts list items, empty items, keys, scalars and collections', () => {
    assert.equal(countYamlNodes('', 100), 0);
    assert.equal(countYamlNodes('nonMasqueradeCIDRs:\n  - 10.0.0.0/8\n  - 1.0.0.0/8\n', 100), 3);
    assert.equal(countYamlNodes('-\n-\n-\n', 100), 3);
    assert.equal(countYamlNodes('[a, b, {c: d}]', 100), 6);
    assert.equal(countYamlNodes('[1,1,1,1,1]', 2), 3, 'stops counting past the bound');
  });

  it('refuses a file of more values than the limit before building them, with the figures', () => {
    const text = `nonMasqueradeCIDRs: [${Array(MAX_CONFIG_NODES).fill('1').join(',')}]\n`;
    assert.ok(text.length < MAX_CONFIG_BYTES, 'small in bytes: only the value count catches it');
    assert.throws(
      () => parseConfigText(text, '/etc/config/ip-masq-agent', V4),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.issues.length === 1 &&
        e.issues[0]?.source === '/etc/config/ip-masq-agent' &&
        e.issues[0].message.includes(`more than ${MAX_CONFIG_NODES.toLocaleString('en')} values`),
    );
  });
});

describe('CIDR cap per backend', () => {
  it('is set for every real backend, and cidrLimit is bounded by it', () => {
    assert.deepEqual(Object.keys(MAX_CIDRS).sort(), ['iptables-legacy', 'iptables-nft', 'nftables']);
    assert.equal(maxCidrsFor('iptables-nft'), MAX_CIDRS['iptables-nft']);
    assert.equal(maxCidrsFor('fake'), Math.max(...Object.values(MAX_CIDRS)));
    assert.ok(MAX_CONFIG_NODES > Math.max(...Object.values(MAX_CIDRS)), 'a file can hold the largest cap');
  });

  it('rejects more CIDRs than the backend handles whatever cidrLimit says, naming the backend and the figure', () => {
    const cap = { backend: 'iptables-nft', max: 10 };
    const text = `cidrLimit: 1000\nnonMasqueradeCIDRs: [${cidrs(11).join(', ')}]\n`;
    assert.throws(
      () => parseConfigText(text, 'cfg.yaml', { ...V4, cidrCap: cap }),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.equal(e.issues.length, 1);
        assert.equal(e.issues[0]?.path, 'nonMasqueradeCIDRs[10]', 'points at the first entry over the cap');
        assert.match(e.issues[0]?.message ?? '', /11 CIDRs are more than the iptables-nft backend is proven to handle: 10 at most, whatever cidrLimit says/);
        assert.match(e.issues[0]?.message ?? '', /--backend=nftables/);
        return true;
      },
    );
    // At the cap it is accepted, with a warning that cidrLimit asks for more than it gets.
    const ok = parseConfigText(`cidrLimit: 1000\nnonMasqueradeCIDRs: [${cidrs(10).join(', ')}]\n`, 'cfg.yaml', { ...V4, cidrCap: cap });
    assert.equal(ok.config.nonMasqueradeCIDRs.length, 10);
    assert.ok(ok.warnings.some((w) => w.path === 'cidrLimit' && /above what the iptables-nft backend is proven to handle; at most 10 CIDRs/.test(w.message)));
  });

  it('applies the largest cap when no backend is named', () => {
    const max = Math.max(...Object.values(MAX_CIDRS));
    const r = parseConfigText(`cidrLimit: ${max * 10}\nnonMasqueradeCIDRs: [10.0.0.0/8]\n`, 'cfg.yaml', V4);
    assert.ok(r.warnings.some((w) => w.message.includes(`above what any backend is proven to handle; at most ${max.toLocaleString('en')} CIDRs`)));
  });

  it('follows the flags: a named backend gets its cap, a choice left to detection the smallest it may pick', () => {
    assert.deepEqual(cidrCapForFlags('nftables', 'auto'), { backend: 'nftables', max: MAX_CIDRS.nftables });
    assert.deepEqual(cidrCapForFlags('iptables', 'legacy'), { backend: 'iptables-legacy', max: MAX_CIDRS['iptables-legacy'] });
    assert.equal(cidrCapForFlags('iptables', 'auto').max, Math.min(MAX_CIDRS['iptables-nft'], MAX_CIDRS['iptables-legacy']));
    assert.match(cidrCapForFlags('iptables', 'auto').backend, /--iptables-mode=auto/);
    assert.equal(cidrCapForFlags('auto', 'auto').max, Math.min(...Object.values(MAX_CIDRS)));
  });
});

describe('parse cache', () => {
  it('parses an unchanged file once, and again when it changes', async () => {
    const file = join(root, `cache-${++counter}`);
    await writeFile(file, 'nonmasqueradecidrs: [10.0.0.0/8]\n'); // a case-folded key: a warning of the parser itself
    const cache = new ParseCache();
    const a = await loadConfig(file, V4, undefined, cache);
    const b = await loadConfig(file, V4, undefined, cache);
    assert.equal(a.warnings[0], b.warnings[0], 'the same warning object: not parsed again');
    await writeFile(file, 'nonMasqueradeCIDRs: [192.0.2.0/24]\n');
    const c = await loadConfig(file, V4, undefined, cache);
    assert.deepEqual(
      c.config.nonMasqueradeCIDRs.map((e) => e.text),
      ['192.0.2.0/24'],
    );
    assert.equal(cache.size, 1);
  });
});
