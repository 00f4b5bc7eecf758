// Golden cases of the nftables backend: test/golden/nftables/<case>/policy.json in, and
// script.nft (what we send to `nft -f -`), expected.txt (canonical read-back lines per family)
// and list.json (what the real `nft -j list table` printed, captured by the integration test)
// out. Run with UPDATE_GOLDEN=1 to rewrite them; review the diff before committing.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatCidr, formatIp, LINK_LOCAL_V4, LINK_LOCAL_V6, parseCidr, parseIp, type Family } from '../../src/net/cidr.js';
import type { ActionRange, ExemptRange, FamilyPolicy, PortRange, PostroutingPosition } from '../../src/policy/types.js';
import { expectedNftLines } from '../../src/backends/nftables/render.js';

/** Whether this run rewrites golden files instead of comparing with them. */
export const UPDATE_GOLDEN = process.env['UPDATE_GOLDEN'] === '1';

/** The folder holding the nftables golden cases, or another under test/golden (found from the compiled test file upwards). */
export function nftGoldenRoot(folder = 'nftables'): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'test', 'golden', folder);
    if (existsSync(candidate)) return candidate;
    const parent = resolve(dir, '..');
    if (parent === dir) throw new Error(`cannot find test/golden/${folder}`);
    dir = parent;
  }
}

interface FamilyFixture {
  family: Family;
  linkLocal: boolean;
  cidrs: string[];
  randomFully: boolean;
  toPorts: string[];
  /** `--postrouting-position`; absent means `append`. */
  postroutingPosition?: PostroutingPosition;
  /** `--iptables-masquerade-bit`; absent means 14. */
  masqueradeBit?: number;
  /** masqueradeCIDRs entries. */
  masquerade?: string[];
  /** snat entries as `CIDR>ADDRESS`. */
  snat?: string[];
  /** masqueradeSourceCIDRs of the family; present (even empty) means a source scope. */
  sources?: string[];
}

/** One golden case: its policies (one per family) and the families it removes. */
export interface NftGoldenCase {
  readonly name: string;
  readonly dir: string;
  readonly policies: FamilyPolicy[];
  readonly remove: Family[];
  /** Object names the render is told exist (the replace-by-name form), if any. */
  readonly existing?: ReadonlySet<string>;
}

/** An exempt range as the policy builder makes it. */
export function exemptRange(text: string, reason: ExemptRange['reason'] = 'config', path = ''): ExemptRange {
  const cidr = parseCidr(text);
  return { cidr, text: formatCidr(cidr), reason, source: reason === 'link-local' ? 'built-in' : 'fixture', path };
}

/** `1024-29999` or `8080` as a PortRange. */
export function portRange(text: string): PortRange {
  const [from, to = from] = text.split('-').map(Number);
  if (from === undefined || to === undefined) throw new Error(`bad port range ${text}`);
  return { from, to, text };
}

/** Builds a family policy the way buildPolicy orders it: link-local first, then config order. */
export function familyPolicy(f: FamilyFixture): FamilyPolicy {
  const ll = f.family === 'ipv4' ? LINK_LOCAL_V4 : LINK_LOCAL_V6;
  const exempt = [...(f.linkLocal ? [exemptRange(ll, 'link-local')] : []), ...f.cidrs.map((c, i) => exemptRange(c, 'config', `nonMasqueradeCIDRs[${i}]`))];
  return {
    family: f.family,
    exempt,
    randomFully: f.randomFully,
    toPorts: f.toPorts.map(portRange),
    ...(f.postroutingPosition === undefined ? {} : { postroutingPosition: f.postroutingPosition }),
    ...(f.masqueradeBit === undefined ? {} : { masqueradeBit: f.masqueradeBit }),
    ...(f.masquerade === undefined && f.snat === undefined ? {} : { actions: actionRanges(f) }),
    ...(f.sources === undefined ? {} : { sources: f.sources.map((c, i) => exemptRange(c, 'config', `masqueradeSourceCIDRs[${i}]`)) }),
  };
}

function actionRanges(f: FamilyFixture): ActionRange[] {
  return [
    ...(f.masquerade ?? []).map((c, i): ActionRange => ({ ...exemptRange(c, 'config', `masqueradeCIDRs[${i}]`), action: { kind: 'masquerade' }, list: 'masqueradeCIDRs' })),
    ...(f.snat ?? []).map((t, i): ActionRange => {
      const [cidr = '', addr = ''] = t.split('>');
      const ip = parseIp(addr);
      return { ...exemptRange(cidr, 'config', `snat[${i}].cidrs[0]`), action: { kind: 'snat', toSource: ip, toSourceText: formatIp(ip) }, list: 'snat' };
    }),
  ];
}

/** The render options a golden case stands for. */
export function renderOptionsOf(c: NftGoldenCase): { remove: Family[]; existing?: ReadonlySet<string> } {
  return c.existing ? { remove: c.remove, existing: c.existing } : { remove: c.remove };
}

/** Every golden case of a folder under test/golden, in name order. */
export function loadNftGoldenCases(folder = 'nftables'): NftGoldenCase[] {
  const root = nftGoldenRoot(folder);
  return readdirSync(root)
    .sort()
    .map((name) => {
      const dir = join(root, name);
      const doc = JSON.parse(readFileSync(join(dir, 'policy.json'), 'utf8')) as { families: FamilyFixture[]; remove?: Family[]; existing?: string[] };
      const base = { name, dir, policies: doc.families.map(familyPolicy), remove: doc.remove ?? [] };
      return doc.existing ? { ...base, existing: new Set(doc.existing) } : base;
    });
}

/** expected.txt: each family's canonical lines under a `# <family>` header. */
export function expectedText(policies: readonly FamilyPolicy[]): string {
  return policies.map((p) => [`# ${p.family}`, ...expectedNftLines(p)].join('\n') + '\n').join('');
}

/** Compares `actual` with a golden file, or rewrites the file under UPDATE_GOLDEN=1. */
export function assertGolden(path: string, actual: string): void {
  if (UPDATE_GOLDEN) {
    writeFileSync(path, actual);
    return;
  }
  assert.ok(existsSync(path), `${path} is missing; run the tests with UPDATE_GOLDEN=1 and review it`);
  assert.equal(actual, readFileSync(path, 'utf8'), `${path} differs (UPDATE_GOLDEN=1 rewrites it)`);
}

/** `nft -j` output without what changes from run to run (handles, version banner). */
export function stableNftJson(json: string): unknown {
  const doc = JSON.parse(json) as { nftables: Record<string, Record<string, unknown>>[] };
  return doc.nftables
    .filter((o) => !('metainfo' in o))
    .map((o) => Object.fromEntries(Object.entries(o).map(([kind, body]) => [kind, Object.fromEntries(Object.entries(body).filter(([k]) => k !== 'handle'))])));
}
