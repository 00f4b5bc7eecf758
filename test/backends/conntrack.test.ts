// The stale-flow deleter against a scripted runner: the argv it builds from changed decisions, how
// it reads conntrack's count (none deleted is exit 1, not a failure), and that it never throws.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommandError } from '../../src/errors.js';
import { parseCidr } from '../../src/net/cidr.js';
import { createStaleFlowCleaner, deleteStaleFlows, staleFlowCommands } from '../../src/backends/conntrack.js';
import { parseConfigText } from '../../src/config/parse.js';
import { createMemoryLogger } from '../observe/memory-logger.js';
import { buildPolicy } from '../../src/policy/build.js';
import type { FamilyPolicy } from '../../src/policy/types.js';
import type { ChangedDecisions } from '../../src/policy/changes.js';
import type { CommandResult, Runner } from '../../src/exec/runner.js';

const MIXED: ChangedDecisions = {
  family: 'ipv4',
  widened: false,
  changes: [
    { destinations: [parseCidr('203.0.113.0/24')], sources: [parseCidr('10.244.0.0/16')], oldTranslated: true },
    { destinations: [parseCidr('198.51.100.0/24')], oldTranslated: false },
  ],
};

test('staleFlowCommands: udp and icmp per block; --src-nat only where the old policy translated; --orig-src for a source scope', () => {
  assert.deepEqual(
    staleFlowCommands(MIXED).map((a) => a.join(' ')),
    [
      'conntrack -D -f ipv4 -p udp --orig-src 10.244.0.0/16 --orig-dst 203.0.113.0/24 --src-nat',
      'conntrack -D -f ipv4 -p icmp --orig-src 10.244.0.0/16 --orig-dst 203.0.113.0/24 --src-nat',
      'conntrack -D -f ipv4 -p udp --orig-dst 198.51.100.0/24',
      'conntrack -D -f ipv4 -p icmp --orig-dst 198.51.100.0/24',
    ],
  );
});

test('staleFlowCommands: tcp and sctp only when asked; icmpv6 for IPv6', () => {
  const v6: ChangedDecisions = { family: 'ipv6', widened: false, changes: [{ destinations: [parseCidr('2001:db8::/32')], oldTranslated: true }] };
  assert.deepEqual(
    staleFlowCommands(v6, true).map((a) => a.slice(4, 6).join(' ')),
    ['-p udp', '-p icmpv6', '-p tcp', '-p sctp'],
  );
  assert.deepEqual(staleFlowCommands({ family: 'ipv4', widened: false, changes: [] }), []);
});

/** A runner answering each argv with `answer(argv)`: a result's stderr, or an error to throw. */
function scripted(answer: (argv: readonly string[]) => string | CommandError): { runner: Runner; calls: string[] } {
  const calls: string[] = [];
  const runner: Runner = async (argv) => {
    calls.push(argv.join(' '));
    const a = answer(argv);
    if (a instanceof CommandError) throw a;
    return { stdout: '', stderr: a, exitCode: 0 } satisfies CommandResult;
  };
  return { runner, calls };
}

const said = (n: number): string => `conntrack v1.4.7 (conntrack-tools): ${n} flow entries have been deleted.\n`;

test('deleteStaleFlows sums the counts; "0 flow entries" with exit 1 is no failure', async () => {
  const { runner, calls } = scripted((argv) => (argv.includes('udp') ? said(3) : new CommandError(argv, 1, said(0), 'other', 'exit code 1')));
  assert.deepEqual(await deleteStaleFlows(runner, MIXED), { family: 'ipv4', deleted: 6, errors: [] });
  assert.equal(calls.length, 4);
});

test('deleteStaleFlows returns failures instead of throwing and goes on with the other blocks', async () => {
  const boom = (argv: readonly string[]): CommandError => new CommandError(argv, 1, 'conntrack v1.4.7 (conntrack-tools): Operation failed: invalid parameters\n', 'other', 'exit code 1');
  const { runner, calls } = scripted((argv) => (argv.includes('203.0.113.0/24') ? boom(argv) : said(1)));
  const r = await deleteStaleFlows(runner, MIXED);
  assert.equal(r.deleted, 2);
  assert.equal(r.errors.length, 2);
  assert.equal(calls.length, 4);
});

test('deleteStaleFlows stops at a missing conntrack: every other command would fail alike', async () => {
  const { runner, calls } = scripted((argv) => new CommandError(argv, null, '', 'not-installed', 'conntrack is not installed (not found in PATH)'));
  const r = await deleteStaleFlows(runner, MIXED);
  assert.deepEqual([r.deleted, r.errors.length, calls.length], [0, 1, 1]);
  assert.match(r.errors[0]!.message, /not installed/);
});

/** The IPv4 policy of a config text, with the agent's default flags. */
const policyOf = (text: string): FamilyPolicy =>
  buildPolicy(parseConfigText(text, 'cfg', { enableIPv6: false, nomasqAllReservedRanges: false }).config, { enableIPv6: false, randomFully: true, toPorts: [] }).families[0]!;

test('the stale-flow cleaner deletes, counts and logs what a removed exemption changed; an unchanged policy runs nothing', async () => {
  const { runner, calls } = scripted((argv) => (argv.includes('udp') ? said(2) : said(0)));
  const log = createMemoryLogger();
  const counted: [string, number][] = [];
  const clean = createStaleFlowCleaner({ run: runner, log, countDeleted: (family, n) => void counted.push([family, n]) });
  const [before, after] = [policyOf('nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\n'), policyOf('nonMasqueradeCIDRs: [10.0.0.0/8]\n')];
  await clean(before, before);
  assert.deepEqual([calls, counted], [[], []]);
  await clean(before, after);
  assert.deepEqual(calls, ['conntrack -D -f ipv4 -p udp --orig-dst 198.51.100.0/24', 'conntrack -D -f ipv4 -p icmp --orig-dst 198.51.100.0/24']);
  assert.deepEqual(counted, [['ipv4', 2]]);
  assert.deepEqual(
    log.entries.map((e) => [e.level, e.fields['deleted']]),
    [['info', 2]],
  );
});

test('the stale-flow cleaner reports a missing conntrack as a warning, and stops there', async () => {
  const { runner, calls } = scripted((argv) => new CommandError(argv, null, '', 'not-installed', 'conntrack: not installed'));
  const log = createMemoryLogger();
  await createStaleFlowCleaner({ run: runner, log, countDeleted: () => {} })(policyOf('nonMasqueradeCIDRs: [198.51.100.0/24]\n'), policyOf('nonMasqueradeCIDRs: []\n'));
  assert.equal(calls.length, 1);
  const warn = log.entries.find((e) => e.level === 'warn');
  assert.match(String(warn?.fields['error']), /not installed/);
});
