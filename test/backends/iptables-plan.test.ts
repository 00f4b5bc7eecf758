// The iptables plan, pure: what read() saw in, the restore payload(s) and the repairs out. One
// golden folder per repair case (test/golden/iptables-plan/<case>/): policy.json, postrouting.txt
// (`-S POSTROUTING`), chain.txt (`-S CHAIN`; absent: no chain) and chain-<NAME>.txt (other chains)
// in; payload.txt, fallback.txt (when the payload deletes rules) and plan.json out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ownedLines, planIptables, repairNotTaken, type IptablesObserved, type RenamedJump } from '../../src/backends/iptables/plan.js';
import { findRenamedJumps, judgeRenamedChain, mayBeOurChain, quoteRuleArg } from '../../src/backends/iptables/rules.js';
import { KUBE_MARK_COMMENT, NOT_FIRST_NOTE } from '../../src/backends/iptables/constants.js';
import { renderJumpSaveLine } from '../../src/backends/iptables/render.js';
import { shadowOwner } from '../../src/backends/iptables/shadow.js';
import { exempt, policyOf, type GoldenInput } from './iptables-helpers.js';
import type { FamilyPolicy } from '../../src/policy/types.js';
import { rulesOf } from './sync.js';

const GOLDEN_DIR = fileURLToPath(new URL('../../../test/golden/iptables-plan/', import.meta.url));
const update = process.env['UPDATE_GOLDEN'] === '1';
const CHAIN = 'IP-MASQ-AGENT';
const OURS = renderJumpSaveLine(CHAIN);

const lines = (text: string): string[] => text.split('\n').filter((l) => l !== '');

/** What read() returns for these listings (`others`: the chains renamed jumps and rules before our jump lead to, by name). */
function observe(postrouting: string[], chain: string[] | undefined, others: Record<string, string[]>, owned = true): IptablesObserved {
  const renamed: RenamedJump[] = findRenamedJumps(postrouting, CHAIN).map((r) => ({
    line: r.line,
    target: r.target ?? '(none)',
    verdict: judgeRenamedChain(r.target, r.target !== undefined && mayBeOurChain(r.target) ? others[r.target] : undefined),
  }));
  const chainLines = owned ? (chain ?? []) : undefined;
  return { family: 'ipv4', owned: chainLines && ownedLines(postrouting, chainLines, renamed, CHAIN), postrouting, chain: chainLines, renamed, followed: others };
}

const cases = readdirSync(GOLDEN_DIR, { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name)
  .sort();

test('golden plan cases are present', () => {
  for (const required of [
    'fresh-append',
    'fresh-first',
    'up-to-date',
    'older-release-jump',
    'duplicate-jumps',
    'bare-jump',
    'not-first-with-first',
    'jump-missing-chain-there',
    'renamed-chain-ours',
    'renamed-chain-foreign',
  ]) {
    assert.ok(cases.includes(required), `missing golden case ${required}`);
  }
});

for (const name of cases) {
  test(`golden plan ${name}: payload, fallback and plan`, () => {
    const dir = join(GOLDEN_DIR, name);
    const read = (f: string): string | undefined => (existsSync(join(dir, f)) ? readFileSync(join(dir, f), 'utf8') : undefined);
    const input = JSON.parse(read('policy.json') ?? '') as GoldenInput;
    const others = Object.fromEntries(
      readdirSync(dir)
        .filter((f) => /^chain-.+\.txt$/.test(f))
        .map((f) => [f.slice('chain-'.length, -'.txt'.length), lines(read(f) ?? '')]),
    );
    const chain = read('chain.txt');
    const plan = planIptables(observe(lines(read('postrouting.txt') ?? ''), chain === undefined ? undefined : lines(chain), others), policyOf(input), {
      chain: input.chain,
      randomFully: input.randomFully && input.randomFullySupported,
    });
    const { payload, fallback, family: _f, chain: _c, ...rest } = plan;
    // Each shadowing rule with the owner the metric and the log name it by.
    const summary = `${JSON.stringify({ ...rest, shadowing: rest.shadowing.map((s) => `${s.owner}: ${s.rule}`) }, null, 2)}\n`;
    if (update) {
      writeFileSync(join(dir, 'payload.txt'), payload);
      if (fallback !== undefined) writeFileSync(join(dir, 'fallback.txt'), fallback);
      writeFileSync(join(dir, 'plan.json'), summary);
    }
    assert.ok(existsSync(join(dir, 'plan.json')), `${name}: no plan.json (run with UPDATE_GOLDEN=1)`);
    assert.equal(payload, read('payload.txt'));
    assert.equal(fallback, read('fallback.txt'));
    assert.equal(summary, read('plan.json'));
  });
}

const v4: FamilyPolicy = { family: 'ipv4', exempt: [exempt('169.254.0.0/16', 'link-local'), exempt('10.0.0.0/8')], randomFully: true, toPorts: [] };
const OPTS = { chain: CHAIN, randomFully: true };

test('a read without our chain (owned: false) is never up to date, and adds a found-missing jump only after a -C probe', () => {
  const plan = planIptables(observe(['-P POSTROUTING ACCEPT'], undefined, {}, false), v4, OPTS);
  assert.equal(plan.upToDate, false);
  assert.equal(plan.probeJump, true, 'the chain was not listed: it may be there, so -C asks');
  assert.equal(planIptables(observe(['-P POSTROUTING ACCEPT', OURS], undefined, {}, false), v4, OPTS).verify, undefined, 'the jump in place: no listing after');
});

test('the plan is a value: the same observation and policy give equal plans', () => {
  const seen = observe(['-P POSTROUTING ACCEPT', OURS], ['-N IP-MASQ-AGENT'], {});
  assert.deepEqual(planIptables(seen, v4, OPTS), planIptables(structuredClone(seen), { ...v4 }, OPTS));
});

test('shadowing is counted where our jump will be: before the first jump, everything when it is missing, nothing with first', () => {
  const masq = '-A POSTROUTING -s 10.244.0.0/16 ! -o cni0 -j MASQUERADE';
  const after = '-A POSTROUTING -j MASQUERADE';
  const chain = ['-N IP-MASQ-AGENT'];
  assert.deepEqual(rulesOf(planIptables(observe(['-P POSTROUTING ACCEPT', masq, OURS, after], chain, {}), v4, OPTS).shadowing), [masq]);
  assert.deepEqual(rulesOf(planIptables(observe(['-P POSTROUTING ACCEPT', masq, after], chain, {}), v4, OPTS).shadowing), [masq, after]);
  assert.deepEqual(rulesOf(planIptables(observe(['-P POSTROUTING ACCEPT', masq, OURS], chain, {}), { ...v4, postroutingPosition: 'first' }, OPTS).shadowing), []);
});

test('repairNotTaken: nothing when exactly our jump is there (first when wanted) and no deleted rule is left', () => {
  const kube = '-A POSTROUTING -j KUBE-POSTROUTING';
  assert.equal(repairNotTaken(['-P POSTROUTING ACCEPT', kube, OURS], CHAIN, { first: false, removed: [] }), undefined);
  assert.equal(repairNotTaken(['-P POSTROUTING ACCEPT', kube, OURS], CHAIN, { first: true, removed: [] }), '1 jump to IP-MASQ-AGENT');
  assert.equal(repairNotTaken(['-P POSTROUTING ACCEPT', OURS, OURS], CHAIN, { first: false, removed: [] }), '2 jumps to IP-MASQ-AGENT');
  assert.equal(repairNotTaken(['-P POSTROUTING ACCEPT', OURS, kube], CHAIN, { first: false, removed: [kube] }), '1 jump to IP-MASQ-AGENT and 1 deleted rule still there');
});

test('shadowOwner tells the owner from the chain a rule jumps to, its comment, or its output interface', () => {
  const table: [string, string][] = [
    ['-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING', 'kube-proxy'],
    ['-A POSTROUTING -m comment --comment "cali:O3lYWMrLQYEMJtB5" -j cali-POSTROUTING', 'calico'],
    ['-A cali-nat-outgoing -m comment --comment "cali:flqWnvo8yq4ULQLa" -m set --match-set cali40masq-ipam-pools src -j MASQUERADE --random-fully', 'calico'],
    ['-A POSTROUTING -m comment --comment "cilium-feeder: CILIUM_POST_nat" -j CILIUM_POST_nat', 'cilium'],
    ['-A POSTROUTING -s 10.0.1.0/24 ! -d 10.0.0.0/8 -m comment --comment "cilium masquerade non-cluster" -j MASQUERADE', 'cilium'],
    ['-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG', 'flannel'],
    ['-A POSTROUTING -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully', 'flannel'],
    ['-A POSTROUTING -m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0', 'aws'],
    ['-A POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \\"bridge\\" id: \\"4f2\\"" -j CNI-4f2a1b', 'cni-bridge'],
    ['-A POSTROUTING -s 10.22.0.0/16 ! -o cni0 -j MASQUERADE', 'cni-bridge'],
    ['-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE', 'docker'],
    ['-A POSTROUTING -s 172.18.0.0/16 ! -o br-0123456789ab -j MASQUERADE', 'docker'],
    ['-A POSTROUTING -s 10.244.0.0/16 -j SNAT --to-source 203.0.113.1', 'unknown'],
    ['-A POSTROUTING -m comment --comment "calico-ish but not calico" -j MASQUERADE', 'unknown'],
  ];
  for (const [line, owner] of table) assert.equal(shadowOwner(line), owner, line);
});

test('ownedLines names the rule above our jump when our chain wants it first; nothing when ours is rule 1 or absent', () => {
  const kube = '-A POSTROUTING -j KUBE-POSTROUTING';
  const mark = `-A ${CHAIN} -m mark --mark 0x4000/0x4000 -m comment --comment ${quoteRuleArg(KUBE_MARK_COMMENT)} -j RETURN`;
  const firstLine = (postrouting: string[]): string | undefined => ownedLines(postrouting, [`-N ${CHAIN}`, mark], [], CHAIN)[0];
  assert.equal(firstLine(['-P POSTROUTING ACCEPT', OURS, kube]), OURS);
  assert.equal(firstLine(['-P POSTROUTING ACCEPT', kube]), `-N ${CHAIN}`);
  assert.equal(firstLine(['-P POSTROUTING ACCEPT', kube, OURS]), `${NOT_FIRST_NOTE} ${kube}`);
  const long = `-A POSTROUTING -m comment --comment "${'x'.repeat(500)}" -j MASQUERADE`;
  const line = firstLine([long, OURS]) ?? '';
  assert.ok(Buffer.byteLength(line) < 300 && line.includes('cut'), line);
});
