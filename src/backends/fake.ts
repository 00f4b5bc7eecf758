import type { Family } from '../net/cidr.js';
import type { FamilyPolicy } from '../policy-types.js';
import type { Backend, OwnedState } from './backend.js';
import { exemptionIsFinal, masqueradeMarkHex } from '../policy.js';
import { decisionTable } from '../policy/decide.js';

/** An in-memory backend with the real ones' semantics, for unit tests of the agent. */
export interface FakeBackend extends Backend {
  /** The state each family holds now; tests may overwrite it to simulate damage. */
  readonly tables: Map<Family, OwnedState>;
  /** Number of apply() calls that wrote something, per family. */
  readonly writes: Map<Family, number>;
  /** Makes the next `count` apply() calls of a family (or all families) throw `error`. */
  failNextApplies(count: number, error: Error, family?: Family): void;
  /** Makes the next `count` read() calls throw `error`. */
  failNextReads(count: number, error: Error, family?: Family): void;
  /**
   * Adds a jump into our rules in another form (`jump <form>`, e.g. an older release's), before
   * the others, as an upgrade in place leaves it. read() shows it; apply() and cleanup() remove it,
   * as the iptables backend does.
   */
  addStrayJump(family: Family, form?: string): void;
  /**
   * Inserts a foreign rule above our jump, as `iptables -I POSTROUTING 1` by someone else does.
   * With `first` read() shows it (as the iptables backend does); apply() moves ours back on top.
   */
  insertAbove(family: Family): void;
}

/**
 * Renders a policy as lines, from the same decision table the real renderers use; readable in test
 * failures and unique per policy. Refuses what iptables refuses: an entry or a SNAT address of
 * the other family.
 */
function renderFake(p: FamilyPolicy): string[] {
  for (const e of [...p.exempt, ...(p.actions ?? []), ...(p.sources ?? [])]) {
    if (e.cidr.family !== p.family) throw new Error(`fake: ${e.text} is not ${p.family} (iptables: host/network not found)`);
  }
  for (const a of p.actions ?? []) {
    if (a.action.kind === 'snat' && a.action.toSource.family !== p.family) throw new Error(`fake: SNAT --to-source ${a.action.toSourceText} is not ${p.family} (iptables: bad IP address)`);
  }
  const ports = p.toPorts.map((r) => r.text).join(',');
  const flags = `${p.randomFully ? ' random-fully' : ''}${ports ? ` to-ports ${ports}` : ''}`;
  const scope = p.sources === undefined ? '' : ` from ${p.sources.map((s) => s.text).join(',') || 'none'}`;
  const first = exemptionIsFinal(p);
  const prelude = first ? [`return mark ${masqueradeMarkHex(p.masqueradeBit)}`] : [];
  const rows = decisionTable(p).map((r) =>
    r.action.kind === 'keep' ? `${first ? 'accept' : 'return'} ${r.text}` : r.action.kind === 'masquerade' ? `masquerade ${r.text}${scope}${flags}` : `snat ${r.text} to ${r.action.toSourceText}${scope}${flags}`,
  );
  return [first ? 'jump first' : 'jump', ...prelude, ...rows, `masquerade${scope}${flags}`];
}

/** Creates a fake backend; apply is atomic (all or nothing), cleanup idempotent. */
export function createFakeBackend(): FakeBackend {
  const tables = new Map<Family, OwnedState>();
  const writes = new Map<Family, number>();
  const applyFailures: { family: Family | undefined; error: Error }[] = [];
  const readFailures: { family: Family | undefined; error: Error }[] = [];
  const takeFailure = (queue: typeof applyFailures, family: Family): Error | undefined => {
    const i = queue.findIndex((f) => f.family === undefined || f.family === family);
    return i < 0 ? undefined : queue.splice(i, 1)[0]?.error;
  };
  return {
    name: 'fake',
    tables,
    writes,
    expected: (p) => renderFake(p),
    read: async (family) => {
      const err = takeFailure(readFailures, family);
      if (err) throw err;
      return tables.get(family) ?? [];
    },
    apply: async (p) => {
      const err = takeFailure(applyFailures, p.family);
      if (err) throw err;
      tables.set(p.family, renderFake(p));
      writes.set(p.family, (writes.get(p.family) ?? 0) + 1);
    },
    cleanup: async (family) => {
      tables.delete(family);
    },
    failNextApplies(count, error, family) {
      for (let i = 0; i < count; i++) applyFailures.push({ family, error });
    },
    addStrayJump(family, form = 'older release') {
      tables.set(family, [`jump ${form}`, ...(tables.get(family) ?? [])]);
    },
    insertAbove(family) {
      const have = tables.get(family) ?? [];
      if (have.includes('jump first')) tables.set(family, ['foreign rule above our jump', ...have]);
    },
    failNextReads(count, error, family) {
      for (let i = 0; i < count; i++) readFailures.push({ family, error });
    },
  };
}
