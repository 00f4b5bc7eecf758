// `ip-masq-agent status [flags]` (its help says what it compares). Read-only: it builds the backend
// as the agent does, but never applies, and never removes the other backend's form (selectBackend would).
import { sameState, type OwnedState } from '../backends/backend.js';
import { openBackendReadOnly, type OpenedBackend } from '../backends/select.js';
import type { ShadowingRule } from '../backends/shadow-owner.js';
import { CommandError, errorMessage } from '../errors.js';
import { mentionsPermission } from '../exec/runner.js';
import type { Family } from '../net/cidr.js';
import type { DecisionCount } from '../policy/types.js';
import { buildPolicy } from '../policy/build.js';
import { defineCommand } from './command-shape.js';
import { EXIT, FAMILY_NAME, writeJson, type CommandIo } from './command.js';

const HELP = {
  usage: 'ip-masq-agent status [flags] [--config PATH]',
  description: `Reads the live rules in the current network namespace (run it on the node, or in the agent's
pod) and compares them with what the config and flags want, family by family. Prints the
difference: "- line" is missing, "+ line" is there but not wanted. Give the agent's own flags
(--backend, --masq-chain, --enable-ipv6, ...). Read-only: it never writes or removes a rule.
Usable as an exec probe.
Exit status: 0 in sync, 1 drifted or missing, 2 usage error, 3 could not check (tool missing,
permission denied, invalid config).`,
  examples: ['ip-masq-agent status --enable-ipv6', 'kubectl -n kube-system exec ds/ip-masq-agent -- ip-masq-agent status --output json'],
};

/** One family's comparison, keys in `--output json` order; `shadowing`: others' rules that translate before ours. */
export type FamilyComparison = ReturnType<typeof compareFamily> & { readonly shadowing?: readonly ShadowingRule[] };

/** Lines of `a` not matched by a line of `b`, counting repeats. */
function subtract(a: OwnedState, b: OwnedState): string[] {
  const left = new Map<string, number>();
  for (const l of b) left.set(l, (left.get(l) ?? 0) + 1);
  return a.filter((l) => {
    const n = left.get(l) ?? 0;
    left.set(l, n - 1);
    return n <= 0;
  });
}

/** Compares one family's live state with the wanted one (order matters: rules match first-wins). */
export function compareFamily(family: Family, expected: OwnedState, actual: OwnedState) {
  const missing = subtract(expected, actual);
  const unexpected = subtract(actual, expected);
  if (sameState(expected, actual)) return { family, state: 'in-sync' as const, missing, unexpected, expected, actual };
  const state = actual.length === 0 ? ('missing' as const) : ('drifted' as const);
  const orderDiffersAt = missing.length === 0 && unexpected.length === 0 ? expected.findIndex((l, i) => l !== actual[i]) + 1 : undefined;
  return { family, state, missing, unexpected, ...(orderDiffersAt === undefined ? {} : { orderDiffersAt }), expected, actual };
}

/** Text report of one family: a summary line, then `- missing` and `+ unexpected` lines. */
export function formatComparison(c: FamilyComparison): string {
  const name = FAMILY_NAME[c.family];
  const shadowing = (c.shadowing ?? []).map((s) => `  ! translates before ours (${s.owner}): ${s.rule}`);
  if (c.state === 'in-sync') return `${[`${name}: in sync (${c.expected.length} lines)`, ...shadowing].join('\n')}\n`;
  const head =
    c.state === 'missing'
      ? `${name}: missing: none of the ${c.expected.length} wanted lines are there (the agent has not run here, or its rules were removed)`
      : c.orderDiffersAt !== undefined
        ? `${name}: drifted: the wanted lines are there in another order (first difference at line ${c.orderDiffersAt}); rules match first-wins, so order matters`
        : `${name}: drifted: ${c.missing.length} missing, ${c.unexpected.length} unexpected`;
  const lines = [...c.missing.map((l) => `  - ${l}`), ...c.unexpected.map((l) => `  + ${l}`), ...shadowing];
  return `${[head, ...lines].join('\n')}\n`;
}

// Connections per decision are read from the rules' own counters (a nat rule counts the first
// packet of each connection), so they start at 0 whenever the agent rewrites its rules.

/** What a count stands for: `keep 10.0.0.0/8 (nonMasqueradeCIDRs)`, `masquerade (the catch-all rule)`. */
function describeCount(c: DecisionCount): string {
  if (c.cidr !== undefined) return `${c.action} ${c.cidr} (${c.list})`;
  return c.list === 'default' ? `${c.action} (the catch-all rule)` : `${c.action} (every ${c.list} entry)`;
}

/** The lines `status` prints: one per counted entry, the count right-aligned. */
function formatCountLines(counts: readonly DecisionCount[]): string[] {
  const width = Math.max(0, ...counts.map((c) => String(c.packets).length));
  return counts.map((c) => `  ${FAMILY_NAME[c.family]}  ${String(c.packets).padStart(width)}  ${describeCount(c)}`);
}

function cannotCheck(io: CommandIo, what: string, e: unknown): number {
  const hint = mentionsPermission(e)
    ? " (run it as root, or in the agent's pod, which has NET_ADMIN)"
    : e instanceof CommandError && e.failure === 'not-installed'
      ? ' (the tool is not installed here; run status where the agent runs, or pick --backend / --iptables-mode)'
      : '';
  io.stderr(`ip-masq-agent status: cannot ${what}: ${errorMessage(e)}${hint}\n`);
  return EXIT.cannotCheck;
}

/** Runs `status`; exit 0 in sync, 1 drifted or missing, 2 usage error, 3 could not check. */
export const runStatus = defineCommand({
  name: 'status',
  help: HELP,
  agentFlags: ['config', 'backend', 'iptables-mode', 'masq-chain', 'enable-ipv6', 'random-fully', 'to-ports', 'nomasq-all-reserved-ranges', 'postrouting-position', 'iptables-masquerade-bit'],
  invalidConfig: { message: 'cannot tell which rules are wanted: the config is invalid (the agent keeps its last good rules)', exit: EXIT.cannotCheck },
  run: async ({ opts, output, io, deps, select, loadConfig }) => {
    const cfg = await loadConfig();
    const policy = buildPolicy(cfg.config, opts.policy);
    let opened: OpenedBackend;
    try {
      opened = await (deps.openBackend ?? openBackendReadOnly)(select);
    } catch (e) {
      return cannotCheck(io, 'pick the backend', e);
    }
    const comparisons: FamilyComparison[] = [];
    for (const p of policy.families) {
      try {
        const observed = await opened.backend.read(p.family);
        const { shadowing } = opened.backend.plan(observed, p);
        comparisons.push({ ...compareFamily(p.family, opened.backend.expected(p), observed.owned ?? []), ...(shadowing.length > 0 ? { shadowing } : {}) });
      } catch (e) {
        return cannotCheck(io, `read the ${p.family} rules with ${opened.backend.name}`, e);
      }
    }
    const inSync = comparisons.every((c) => c.state === 'in-sync');
    // Counted only where rules are there; a failed read is said, and changes no exit status.
    const present = policy.families.filter((p) => comparisons.some((c) => c.family === p.family && c.state !== 'missing'));
    const read = present.length === 0 ? undefined : opened.backend.counters?.(present);
    const counts = await read?.catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
    const config = { path: cfg.path, files: cfg.files, usingDefaults: cfg.usingDefaults, hash: cfg.hash };
    if (output === 'json') {
      writeJson(io, {
        inSync,
        backend: opened.backend.name,
        backendReason: opened.description,
        config,
        families: comparisons,
        ...(counts === undefined || counts instanceof Error ? {} : { connections: counts }),
      });
    } else {
      io.stdout(`backend: ${opened.description}\n`);
      io.stdout(`config: ${cfg.path}${cfg.usingDefaults ? ' (no key set: defaults in use)' : cfg.files.length > 1 ? ` (${cfg.files.length} files)` : ''}\n`);
      for (const c of comparisons) io.stdout(formatComparison(c));
      io.stdout(inSync ? 'in sync\n' : 'not in sync: the agent repairs this at its next sync; if it does not, check its log and /healthz\n');
      if (counts instanceof Error) io.stdout(`connections: cannot read the rules' counters: ${counts.message}\n`);
      else if (counts !== undefined) io.stdout(`connections per entry, counted since the rules were last written:\n${formatCountLines(counts).join('\n')}\n`);
    }
    return inSync ? EXIT.ok : EXIT.failed;
  },
});
