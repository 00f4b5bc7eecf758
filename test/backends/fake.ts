import { parseCidr, parseIp, type Family } from '../../src/net/cidr.js';
import type { FamilyPolicy } from '../../src/policy/types.js';
import { sameState, type Backend, type Observed, type OwnedState, type Plan } from '../../src/backends/backend.js';
import { exemptionIsFinal, masqueradeMarkHex } from '../../src/policy/build.js';
import { decisionTable } from '../../src/policy/decide.js';
import { shadowOwner } from '../../src/backends/iptables/shadow.js';

/** What the fake's read() sees: our lines, and the rules of others above our jump. */
export interface FakeObserved extends Observed {
  readonly above: readonly string[];
}

/** What the fake's apply() runs: its script, empty when the plan is up to date. */
export interface FakePlan extends Plan {
  readonly script: string;
}

/**
 * An in-memory backend with the real ones' semantics, for unit tests of the agent: read, a pure
 * plan, and an apply that runs the planned script against a copy of the state and commits only
 * when the whole script was accepted (as knftables' Fake does), refusing what iptables refuses.
 */
export interface FakeBackend extends Backend<FakeObserved, FakePlan> {
  /** Our lines per family now; tests may overwrite them to simulate damage. */
  readonly tables: Map<Family, OwnedState>;
  /** Rules of others above our jump per family (what insertAbove adds). */
  readonly above: Map<Family, readonly string[]>;
  /** Every script apply() ran, refused ones too, in order. */
  readonly scripts: string[];
  /** Number of apply() calls that wrote something, per family. */
  readonly writes: Map<Family, number>;
  /** Makes the next `count` apply() calls that have something to run, of a family (or all), throw `error`. */
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
   * Inserts another program's MASQUERADE rule above our jump, as `iptables -I POSTROUTING 1` does.
   * The plan lists it as shadowing; with `first`, read() shows it as drift and apply() moves ours back on top.
   */
  insertAbove(family: Family): void;
}

/** The rule insertAbove() puts above ours, as `iptables -S` prints it. */
const FOREIGN_RULE = '-A POSTROUTING -p udp --dport 9 -j MASQUERADE';

/**
 * Renders a policy as the lines read() shows, from the same decision table the real renderers use;
 * readable in test failures and unique per policy.
 */
function renderFakeLines(p: FamilyPolicy): string[] {
  const ports = p.toPorts.map((r) => r.text).join(',');
  const flags = `${p.randomFully ? ' random-fully' : ''}${ports ? ` to-ports ${ports}` : ''}`;
  const scope = p.sources === undefined ? '' : ` from ${p.sources.map((s) => s.text).join(',') || 'none'}`;
  const first = exemptionIsFinal(p);
  const prelude = first ? [`return mark ${masqueradeMarkHex(p.masqueradeBit)}`] : [];
  const rows = decisionTable(p).map((r) =>
    r.action.kind === 'keep'
      ? `${first ? 'accept' : 'return'} ${r.text}`
      : r.action.kind === 'masquerade'
        ? `masquerade ${r.text}${scope}${flags}`
        : `snat ${r.text} to ${r.action.toSourceText}${scope}${flags}`,
  );
  return [first ? 'jump first' : 'jump', ...prelude, ...rows, `masquerade${scope}${flags}`];
}

/** The fake tool's script for one family: flush what is there (stray jumps too), then add every line (`jump first` goes above others' rules). */
function renderFakeScript(p: FamilyPolicy): string {
  return [`flush ${p.family}`, ...renderFakeLines(p).map((l) => `add ${p.family} ${l}`)].join('\n') + '\n';
}

/**
 * Runs one family's fake script against a copy of its lines and of the rules above ours, as the
 * real tools do: a line they would refuse (an address of the other family, an unknown command)
 * fails the whole script, and the state stays.
 */
function runFakeScript(script: string, family: Family, lines: OwnedState, above: readonly string[]): { lines: OwnedState; above: readonly string[] } {
  const next = { lines: [...lines], above };
  script.split('\n').forEach((line, i) => {
    const refuse = (what: string, why: string): never => {
      throw new Error(`fake: line ${i + 1}: ${what} (iptables: ${why})`);
    };
    if (line === '') return;
    const m = /^(flush|add) (ipv4|ipv6)(?: (.*))?$/.exec(line);
    if (m?.[2] !== family) return refuse(`unknown command ${JSON.stringify(line)}`, `not a ${family} command`);
    if (m[1] === 'flush') next.lines = [];
    const words = (m[3] ?? '').split(/[ ,]/);
    words.forEach((word, j) => {
      // A CIDR or a SNAT address: iptables cannot resolve one of the other family in this family's table.
      const snat = words[0] === 'snat' && words[j - 1] === 'to';
      if (!snat && !word.includes('/')) return;
      const [what, why] = snat ? [`SNAT --to-source ${word}`, 'bad IP address'] : [word, 'host/network not found'];
      let of: Family | undefined;
      try {
        of = (snat ? parseIp(word) : parseCidr(word)).family;
      } catch {
        refuse(`${what} is not ${snat ? 'an address' : 'a CIDR'}`, why);
      }
      if (of !== family) refuse(`${what} is not ${family}`, why);
    });
    // Inserted at rule 1: what others put above ours now comes after it.
    if (m[3] === 'jump first') next.above = [];
    if (m[1] === 'add') next.lines.push(m[3] ?? '');
  });
  return next;
}

/** Creates a fake backend; apply is atomic (all or nothing), cleanup idempotent. */
export function createFakeBackend(): FakeBackend {
  const tables = new Map<Family, OwnedState>();
  const above = new Map<Family, readonly string[]>();
  const writes = new Map<Family, number>();
  const scripts: string[] = [];
  const applyFailures: { family: Family | undefined; error: Error }[] = [];
  const readFailures: { family: Family | undefined; error: Error }[] = [];
  const takeFailure = (queue: typeof applyFailures, family: Family): Error | undefined => {
    const i = queue.findIndex((f) => f.family === undefined || f.family === family);
    return i < 0 ? undefined : queue.splice(i, 1)[0]?.error;
  };
  return {
    name: 'fake',
    tables,
    above,
    writes,
    scripts,
    expected: (p) => renderFakeLines(p),
    render: (p) => ({ family: p.family, command: 'fake-restore', payload: renderFakeScript(p) }),
    describe: () => ({ dialect: 'iptables' }),
    leftovers: () =>
      (['ipv4', 'ipv6'] as const).map((family) => ({
        name: `fake ${family === 'ipv4' ? 'IPv4' : 'IPv6'}`,
        backend: 'fake',
        inspect: async () => {
          const n = (tables.get(family) ?? []).length;
          return n === 0 ? { state: 'absent' as const } : { state: 'present' as const, what: `${n} line${n === 1 ? '' : 's'}` };
        },
        remove: async () => void tables.delete(family),
      })),
    read: async (family, options) => {
      const err = takeFailure(readFailures, family);
      if (err) throw err;
      const lines = tables.get(family) ?? [];
      const others = above.get(family) ?? [];
      // With `first`, a rule above ours is ours not being first: drift, as the iptables backend reads it.
      const owned = lines.includes('jump first') && others.length > 0 ? [...others.map((r) => `above ours: ${r}`), ...lines] : lines;
      return { family, owned: options?.owned === false ? undefined : owned, above: others };
    },
    plan: (observed, p) => {
      const upToDate = sameState(observed.owned, renderFakeLines(p));
      // Once applied, `first` puts ours above every other rule: nothing is left to shadow it.
      return { family: p.family, upToDate, shadowing: exemptionIsFinal(p) ? [] : observed.above.map((rule) => ({ rule, owner: shadowOwner(rule) })), script: upToDate ? '' : renderFakeScript(p) };
    },
    apply: async (plan) => {
      if (plan.upToDate) return;
      const err = takeFailure(applyFailures, plan.family);
      if (err) throw err;
      scripts.push(plan.script);
      // Applied to a copy, committed only when every line was accepted.
      const next = runFakeScript(plan.script, plan.family, tables.get(plan.family) ?? [], above.get(plan.family) ?? []);
      tables.set(plan.family, next.lines);
      above.set(plan.family, next.above);
      writes.set(plan.family, (writes.get(plan.family) ?? 0) + 1);
    },
    cleanup: async (family) => {
      tables.delete(family);
    },
    failNextApplies(count, error, family) {
      for (let i = 0; i < count; i++) applyFailures.push({ family, error });
    },
    failNextReads(count, error, family) {
      for (let i = 0; i < count; i++) readFailures.push({ family, error });
    },
    addStrayJump(family, form = 'older release') {
      tables.set(family, [`jump ${form}`, ...(tables.get(family) ?? [])]);
    },
    insertAbove(family) {
      above.set(family, [FOREIGN_RULE, ...(above.get(family) ?? [])]);
    },
  };
}
