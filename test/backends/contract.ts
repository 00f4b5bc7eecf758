// The shared Backend contract: every implementation (fake, iptables, nftables) must pass it.
// Call runBackendContract from a test file with a factory that gives a backend on a clean host.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../../src/backends/backend.js';
import type { ActionRange, FamilyPolicy, ExemptRange } from '../../src/policy/types.js';
import { formatIp, parseCidr, formatCidr, parseIp } from '../../src/net/cidr.js';
import type { Family } from '../../src/net/cidr.js';
import { applyPolicy, readOwned } from './sync.js';

/** A fresh backend on a clean host, plus a way to damage what it owns and to dispose of it. */
export interface ContractSubject {
  readonly backend: Backend;
  /** Breaks the applied state from outside (e.g. flush the chain), as a third party would. */
  damage(family: Family): Promise<void>;
  /**
   * Adds rules that send traffic into what the backend owns in forms other than its own (an older
   * release's jump, a duplicate, a bare jump), as an upgrade in place or another tool leaves them.
   * Absent where the backend has no such entry point (nftables owns its whole table and hook).
   */
  addStrayJumps?(family: Family): Promise<void>;
  /**
   * Inserts a foreign rule at the top of what decides before ours (`iptables -I POSTROUTING 1`).
   * Absent where nothing can be put above us by position (nftables orders base chains by priority).
   */
  insertAbove?(family: Family): Promise<void>;
  /** Every text the backend piped into its tool (stdin of each command, or the fake's scripts), in order. */
  readonly piped: readonly string[];
  dispose(): Promise<void> | void;
}

function range(text: string, reason: ExemptRange['reason'] = 'config'): ExemptRange {
  const cidr = parseCidr(text);
  return { cidr, text: formatCidr(cidr), reason, source: 'contract', path: '' };
}

/** Policy fixtures used by the contract. */
export const contractPolicies = {
  v4: {
    family: 'ipv4',
    exempt: [range('169.254.0.0/16', 'link-local'), range('10.0.0.0/8'), range('192.0.2.0/24')],
    randomFully: false,
    toPorts: [],
  },
  v4b: {
    family: 'ipv4',
    exempt: [range('198.51.100.0/24')],
    randomFully: false,
    toPorts: [],
  },
  v6: {
    family: 'ipv6',
    exempt: [range('fe80::/10', 'link-local'), range('2001:db8:200::/48')],
    randomFully: false,
    toPorts: [],
  },
} satisfies Record<string, FamilyPolicy>;

/** Why the nftables backend skips the position tests: base chains are ordered by priority, not by rule position. */
export const NFT_HAS_NO_POSITION = 'nftables: base chains run in priority order; no rule can be inserted above ours';

function action(text: string, toSource?: string): ActionRange {
  const cidr = parseCidr(text);
  if (toSource === undefined) return { cidr, text: formatCidr(cidr), action: { kind: 'masquerade' }, list: 'masqueradeCIDRs', source: 'contract', path: '' };
  const ip = parseIp(toSource);
  return { cidr, text: formatCidr(cidr), action: { kind: 'snat', toSource: ip, toSourceText: formatIp(ip) }, list: 'snat', source: 'contract', path: '' };
}

/** Longest-prefix fixtures: an exception, a SNAT range, a source scope; and one a real tool refuses. */
export const decisionPolicies = {
  v4: {
    ...contractPolicies.v4,
    actions: [action('10.9.0.0/16'), action('198.51.100.0/24', '192.0.2.50')],
    sources: [range('10.244.0.0/16')],
  },
  /** A SNAT address of the other family: iptables refuses `--to-source 2001:db8::9` in an IPv4 table. */
  wrongFamily: {
    ...contractPolicies.v4b,
    actions: [action('203.0.113.0/24', '2001:db8::9')],
  },
} satisfies Record<string, FamilyPolicy>;

/** Why the nftables backend skips the stray-jump tests: its chain hooks itself, no rule jumps into it. */
export const NFT_HAS_NO_JUMP = 'nftables: the table hooks postrouting itself; no rule of another table jumps into it';

/** Registers the contract tests for one backend implementation. */
export function runBackendContract(
  label: string,
  makeSubject: () => Promise<ContractSubject>,
  /** noStrayJumps: why this backend has no jump into its rules that others could duplicate; noPosition: why nothing can be inserted above ours. */
  options: { readonly noStrayJumps?: string; readonly noPosition?: string } = {},
): void {
  const withSubject = (name: string, body: (s: ContractSubject) => Promise<void>, options: { skip?: string | false } = {}): void => {
    test(`${label}: ${name}`, options, async () => {
      const s = await makeSubject();
      try {
        await body(s);
      } finally {
        await s.dispose();
      }
    });
  };
  const { v4, v4b, v6 } = contractPolicies;
  const v4first: FamilyPolicy = { ...v4, postroutingPosition: 'first' };
  const v6first: FamilyPolicy = { ...v6, postroutingPosition: 'first', masqueradeBit: 0 };

  withSubject('render: pure, per family, holds every CIDR of the policy, and is exactly what apply pipes into the tool on a node without our rules', async ({ backend, piped }) => {
    for (const p of [v4, v6, v4first]) {
      const r = backend.render(p);
      assert.deepEqual(backend.render(p), r, 'the same policy renders the same text');
      assert.equal(r.family, p.family);
      assert.ok(r.command.length > 0 && r.payload.length > 0);
      for (const e of p.exempt) assert.ok(r.payload.includes(e.text), `${e.text} in\n${r.payload}`);
      for (const f of ['ipv4', 'ipv6'] as const) await backend.cleanup(f);
      const before = piped.length;
      await applyPolicy(backend, p);
      // A follow-up (the iptables jump, added where missing) may join the payload's own transaction.
      const sent = (piped[before] ?? '').split('\n');
      const rendered = r.payload.split('\n');
      assert.deepEqual(
        sent.filter((l) => rendered.includes(l)),
        rendered,
        'apply pipes the rendered payload first',
      );
      assert.ok(sent.length - rendered.length <= (r.followUp === undefined ? 0 : 1), `only the follow-up joins it:\n${sent.join('\n')}`);
      assert.deepEqual(await readOwned(backend, p.family), backend.expected(p));
    }
    assert.notEqual(backend.render(v4).payload, backend.render(v4b).payload);
  });

  withSubject('describe: the words its rules are in', async ({ backend }) => {
    const facts = backend.describe();
    assert.ok(['iptables', 'nftables'].includes(facts.dialect), facts.dialect);
  });

  withSubject('leftovers: none on a clean host; what apply wrote is found, and removing every target leaves nothing', async ({ backend }) => {
    const targets = backend.leftovers();
    assert.ok(targets.length > 0);
    for (const t of targets) {
      assert.equal(t.backend, backend.name);
      assert.notEqual((await t.inspect()).state, 'present', t.name);
    }
    await applyPolicy(backend, v4);
    await applyPolicy(backend, v6);
    const found = [];
    for (const t of targets) if ((await t.inspect()).state === 'present') found.push(t);
    assert.ok(found.length > 0, 'what apply wrote shows as a leftover');
    for (const t of found) await t.remove();
    assert.deepEqual(await readOwned(backend, 'ipv4'), []);
    assert.deepEqual(await readOwned(backend, 'ipv6'), []);
    for (const t of targets) assert.notEqual((await t.inspect()).state, 'present', `${t.name} after removal`);
  });

  withSubject('reads nothing on a clean host', async ({ backend }) => {
    assert.deepEqual(await readOwned(backend, 'ipv4'), []);
    assert.deepEqual(await readOwned(backend, 'ipv6'), []);
  });

  withSubject('apply then read returns exactly the expected state', async ({ backend }) => {
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
    assert.ok(backend.expected(v4).length > 0);
  });

  withSubject('apply is idempotent: applying twice reads back the same state', async ({ backend }) => {
    await applyPolicy(backend, v4);
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
  });

  withSubject('plan is pure: the same observed state and policy give the same plan; planning changes nothing and runs nothing', async ({ backend, piped }) => {
    await applyPolicy(backend, v4);
    for (const [p, options] of [
      [v4, {}],
      [v4b, {}],
      [v4b, { owned: false }],
      [v6, {}],
    ] as const) {
      const observed = await backend.read(p.family, options);
      const seen = structuredClone(observed);
      const before = piped.length;
      const plan = backend.plan(observed, p);
      assert.deepEqual(backend.plan(observed, p), plan, 'the same inputs, the same plan');
      assert.deepEqual(observed, seen, 'what was read is left as it was');
      assert.equal(piped.length, before, 'planning pipes nothing into a tool');
      assert.equal(plan.family, p.family);
      assert.ok(Array.isArray(plan.shadowing), 'a plan always lists what shadows our rules (empty when nothing does)');
    }
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4), 'the kernel still holds what was applied');
  });

  withSubject('a plan is up to date right after its apply, and applying an up-to-date plan runs nothing', async ({ backend, piped }) => {
    for (const p of [v4, v6, decisionPolicies.v4, v4first]) {
      const plan = backend.plan(await backend.read(p.family), p);
      assert.equal(plan.upToDate, false, `${p.family}: the kernel holds something else`);
      await backend.apply(plan);
      const again = backend.plan(await backend.read(p.family), p);
      assert.equal(again.upToDate, true, `${p.family}: nothing left to do`);
      const before = piped.length;
      await backend.apply(again);
      assert.equal(piped.length, before, 'nothing piped');
      assert.deepEqual(await readOwned(backend, p.family), backend.expected(p));
    }
  });

  withSubject('a refused apply leaves the rules in force: the plan of the old policy is still up to date', async ({ backend }) => {
    await applyPolicy(backend, v4);
    await assert.rejects(async () => backend.apply(backend.plan(await backend.read('ipv4'), decisionPolicies.wrongFamily)));
    assert.equal(backend.plan(await backend.read('ipv4'), v4).upToDate, true);
  });

  withSubject('read with owned: false lists none of our rules; its plan is never up to date, and applying it leaves exactly the expected state', async ({ backend }) => {
    for (const [before, p] of [
      [undefined, v4],
      [v4, v4b],
      [v4b, v4b],
      [v4b, v4first],
    ] as const) {
      if (before) await applyPolicy(backend, before);
      const observed = await backend.read('ipv4', { owned: false });
      assert.equal(observed.owned, undefined);
      const plan = backend.plan(observed, p);
      assert.equal(plan.upToDate, false, 'what was not listed is not known to be in place');
      await backend.apply(plan);
      assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(p));
    }
  });

  withSubject('a new policy replaces the old one with nothing stale left', async ({ backend }) => {
    await applyPolicy(backend, v4);
    await applyPolicy(backend, v4b);
    const got = await readOwned(backend, 'ipv4');
    assert.deepEqual(got, backend.expected(v4b));
    assert.ok(!got.some((l) => l.includes('10.0.0.0/8')), got.join('\n'));
  });

  withSubject('families are independent', async ({ backend }) => {
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv6'), []);
    await applyPolicy(backend, v6);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
    assert.deepEqual(await readOwned(backend, 'ipv6'), backend.expected(v6));
    await backend.cleanup('ipv6');
    assert.deepEqual(await readOwned(backend, 'ipv6'), []);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
  });

  withSubject('damage is visible on read and healed by the next apply', async (s) => {
    await applyPolicy(s.backend, v4);
    await s.damage('ipv4');
    assert.notDeepEqual(await readOwned(s.backend, 'ipv4'), s.backend.expected(v4));
    await applyPolicy(s.backend, v4);
    assert.deepEqual(await readOwned(s.backend, 'ipv4'), s.backend.expected(v4));
  });

  withSubject('cleanup removes everything and is idempotent', async ({ backend }) => {
    await applyPolicy(backend, v4);
    await applyPolicy(backend, v6);
    await backend.cleanup('ipv4');
    await backend.cleanup('ipv4');
    await backend.cleanup('ipv6');
    assert.deepEqual(await readOwned(backend, 'ipv4'), []);
    assert.deepEqual(await readOwned(backend, 'ipv6'), []);
  });

  withSubject('a longest-prefix policy (exception, SNAT, source scope) reads back exactly; a plain one replaces it with nothing stale', async ({ backend }) => {
    await applyPolicy(backend, decisionPolicies.v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(decisionPolicies.v4));
    assert.notDeepEqual(backend.expected(decisionPolicies.v4), backend.expected(v4));
    await applyPolicy(backend, decisionPolicies.v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(decisionPolicies.v4));
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
  });

  withSubject('a SNAT address of the other family is refused, as iptables refuses it, and the rules in force stay', async ({ backend }) => {
    await applyPolicy(backend, v4);
    await assert.rejects(applyPolicy(backend, decisionPolicies.wrongFamily));
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
  });

  const stray: { skip: string | false } = { skip: options.noStrayJumps ?? false };
  const addStrayJumps = async (s: ContractSubject, family: Family): Promise<void> => {
    assert.ok(s.addStrayJumps, 'the subject must add stray jumps, or the contract must name why it has none');
    await s.addStrayJumps(family);
  };

  withSubject(
    'stray jumps (older forms, duplicates, bare) show on read; the next apply leaves exactly the expected state',
    async (s) => {
      await applyPolicy(s.backend, v4);
      await addStrayJumps(s, 'ipv4');
      const seen = await readOwned(s.backend, 'ipv4');
      assert.ok(seen.length > s.backend.expected(v4).length, `read shows the extra jumps:\n${seen.join('\n')}`);
      await applyPolicy(s.backend, v4);
      assert.deepEqual(await readOwned(s.backend, 'ipv4'), s.backend.expected(v4));
    },
    stray,
  );

  withSubject(
    'cleanup removes stray jumps too, in both families, and is idempotent',
    async (s) => {
      for (const p of [v4, v6]) {
        await applyPolicy(s.backend, p);
        await addStrayJumps(s, p.family);
        await s.backend.cleanup(p.family);
        assert.deepEqual(await readOwned(s.backend, p.family), []);
        await s.backend.cleanup(p.family);
        assert.deepEqual(await readOwned(s.backend, p.family), []);
      }
    },
    stray,
  );

  withSubject('postrouting-position=first: a state of its own, applied and read back exactly; switching back and forth leaves nothing stale', async ({ backend }) => {
    assert.notDeepEqual(backend.expected(v4first), backend.expected(v4));
    await applyPolicy(backend, v4first);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4first));
    await applyPolicy(backend, v6first);
    assert.deepEqual(await readOwned(backend, 'ipv6'), backend.expected(v6first));
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
    await applyPolicy(backend, v4first);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4first));
    await backend.cleanup('ipv4');
    await backend.cleanup('ipv6');
    assert.deepEqual(await readOwned(backend, 'ipv4'), []);
    assert.deepEqual(await readOwned(backend, 'ipv6'), []);
  });

  const position: { skip: string | false } = { skip: options.noPosition ?? false };
  withSubject(
    'postrouting-position=first: a rule inserted above ours shows on read; the next apply puts ours first again',
    async (s) => {
      assert.ok(s.insertAbove, 'the subject must insert a rule above ours, or the contract must name why it cannot');
      for (const p of [v4first, v6first]) {
        await applyPolicy(s.backend, p);
        await s.insertAbove(p.family);
        assert.notDeepEqual(await readOwned(s.backend, p.family), s.backend.expected(p), 'read shows that ours is no longer first');
        await applyPolicy(s.backend, p);
        assert.deepEqual(await readOwned(s.backend, p.family), s.backend.expected(p));
        await s.backend.cleanup(p.family);
        assert.deepEqual(await readOwned(s.backend, p.family), []);
      }
    },
    position,
  );

  withSubject(
    'postrouting-position=append: a rule inserted above ours is not drift, and the plan lists it as shadowing',
    async (s) => {
      assert.ok(s.insertAbove, 'the subject must insert a rule above ours, or the contract must name why it cannot');
      await applyPolicy(s.backend, v4);
      await s.insertAbove('ipv4');
      assert.deepEqual(await readOwned(s.backend, 'ipv4'), s.backend.expected(v4));
      const plan = s.backend.plan(await s.backend.read('ipv4'), v4);
      assert.equal(plan.upToDate, true);
      assert.equal(plan.shadowing.length, 1, `the MASQUERADE rule above ours may shadow our exemptions: ${JSON.stringify(plan.shadowing)}`);
    },
    position,
  );
}
