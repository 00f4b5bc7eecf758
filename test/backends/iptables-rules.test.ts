import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findRenamedJumps, findJumps, judgeRenamedChain, parseRuleLine, planJumpRepair, quoteRuleArg, renamedRemovalLines, splitRuleArgs } from '../../src/backends/iptables/rules.js';
import { renderJumpSaveLine } from '../../src/backends/iptables/render.js';
import { jumpComment } from '../../src/backends/iptables/constants.js';

const OURS = renderJumpSaveLine('IP-MASQ-AGENT');
const QUOTED = OURS.replace(/--comment "([^"]*)"/, '--comment "\\"$1\\""');

test('splitRuleArgs reads quotes and backslash escapes as iptables-restore does', () => {
  const table: [string, string[]][] = [
    ['-A POSTROUTING -j IP-MASQ-AGENT', ['-A', 'POSTROUTING', '-j', 'IP-MASQ-AGENT']],
    ['-A X -m comment --comment "a b  c" -j RETURN', ['-A', 'X', '-m', 'comment', '--comment', 'a b  c', '-j', 'RETURN']],
    ['--comment "\\"quoted\\""', ['--comment', '"quoted"']],
    ['--comment "back\\\\slash and \\\'tick\\\'"', ['--comment', "back\\slash and 'tick'"]],
    ['--comment ""', ['--comment', '']],
    ['  -A\tX  ', ['-A', 'X']],
  ];
  for (const [line, args] of table) assert.deepEqual(splitRuleArgs(line), args, line);
  assert.throws(() => splitRuleArgs('-A X --comment "open'), /unterminated quote/);
});

test('quoteRuleArg and splitRuleArgs round-trip any comment text', () => {
  for (const text of ['plain', 'with space', '"ip-masq-agent: x"', "it's", 'a\\b', '-j IP-MASQ-AGENT', '']) {
    assert.deepEqual(splitRuleArgs(`--comment ${quoteRuleArg(text)}`), ['--comment', text], text);
  }
});

test('parseRuleLine finds the target by meaning: a comment that says "-j CHAIN" is no target', () => {
  assert.deepEqual(parseRuleLine(OURS), { line: OURS, chain: 'POSTROUTING', target: 'IP-MASQ-AGENT', comment: jumpComment('IP-MASQ-AGENT') });
  assert.equal(parseRuleLine(QUOTED)?.target, 'IP-MASQ-AGENT');
  assert.equal(parseRuleLine('-A POSTROUTING -m comment --comment "see -j IP-MASQ-AGENT" -j RETURN')?.target, 'RETURN');
  // A bare comment that is itself "-j" (iptables prints it unquoted).
  assert.equal(parseRuleLine('-A POSTROUTING -m comment --comment -j -j KUBE-X')?.target, 'KUBE-X');
  assert.equal(parseRuleLine('-A POSTROUTING -g IP-MASQ-AGENT')?.target, 'IP-MASQ-AGENT');
  assert.equal(parseRuleLine('-A POSTROUTING -s 10.0.0.0/8')?.target, undefined);
  assert.equal(parseRuleLine('-P POSTROUTING ACCEPT'), undefined);
  assert.equal(parseRuleLine('-N IP-MASQ-AGENT'), undefined);
});

test('findJumps keeps order and ignores other chains and longer chain names', () => {
  const lines = ['-P POSTROUTING ACCEPT', QUOTED, '-A POSTROUTING -j IP-MASQ-AGENT-2', '-A OUTPUT -j IP-MASQ-AGENT', OURS, '-A POSTROUTING -j IP-MASQ-AGENT'];
  assert.deepEqual(
    findJumps(lines, 'IP-MASQ-AGENT').map((r) => r.line),
    [QUOTED, OURS, '-A POSTROUTING -j IP-MASQ-AGENT'],
  );
});

test("planJumpRepair: nothing, append, or restore lines that delete every jump by spec and insert ours at the first one's place", () => {
  const kube = '-A POSTROUTING -j KUBE-POSTROUTING';
  assert.deepEqual(planJumpRepair(['-P POSTROUTING ACCEPT', kube, OURS], 'IP-MASQ-AGENT', OURS), { kind: 'none', remove: [], lines: [] });
  assert.deepEqual(planJumpRepair(['-P POSTROUTING ACCEPT', kube], 'IP-MASQ-AGENT', OURS), { kind: 'append', remove: [], lines: [OURS] });
  const plan = planJumpRepair(['-P POSTROUTING ACCEPT', kube, QUOTED, OURS, '-A POSTROUTING -j IP-MASQ-AGENT'], 'IP-MASQ-AGENT', OURS);
  assert.equal(plan.kind, 'replace');
  assert.deepEqual(plan.kind === 'replace' && plan.remove, [QUOTED, OURS, '-A POSTROUTING -j IP-MASQ-AGENT']);
  assert.deepEqual(plan.lines, [QUOTED.replace(/^-A /, '-D '), OURS.replace(/^-A /, '-D '), '-D POSTROUTING -j IP-MASQ-AGENT', OURS.replace(/^-A POSTROUTING /, '-I POSTROUTING 2 ')]);
  const dup = planJumpRepair([OURS, OURS], 'IP-MASQ-AGENT', OURS);
  assert.equal(dup.kind === 'replace' && dup.remove.length, 2);
});

test('planJumpRepair with first: insert at 1 when missing, move ours to 1 when a rule is above it, nothing when it is rule 1', () => {
  const kube = '-A POSTROUTING -j KUBE-POSTROUTING';
  assert.deepEqual(planJumpRepair(['-P POSTROUTING ACCEPT', kube], 'IP-MASQ-AGENT', OURS, true), {
    kind: 'insert-first',
    remove: [],
    lines: [OURS.replace(/^-A POSTROUTING /, '-I POSTROUTING 1 ')],
  });
  assert.equal(planJumpRepair(['-P POSTROUTING ACCEPT', OURS, kube], 'IP-MASQ-AGENT', OURS, true).kind, 'none');
  const moved = planJumpRepair(['-P POSTROUTING ACCEPT', kube, OURS], 'IP-MASQ-AGENT', OURS, true);
  assert.deepEqual(moved.kind === 'replace' && moved.lines, [OURS.replace(/^-A /, '-D '), OURS.replace(/^-A POSTROUTING /, '-I POSTROUTING 1 ')]);
  // An older form first, ours later: both go, ours comes back at 1.
  const older = planJumpRepair([QUOTED, kube, OURS], 'IP-MASQ-AGENT', OURS, true);
  assert.deepEqual(older.kind === 'replace' && older.remove, [QUOTED, OURS]);
  assert.match(older.lines.at(-1) ?? '', /^-I POSTROUTING 1 /);
});

test("findRenamedJumps: rules with our jump's comment (either release form) that lead elsewhere; ours, others' and other chains' comments are not", () => {
  const toOld = OURS.replace(/-j IP-MASQ-AGENT$/, '-j OLD');
  const quotedToOld = QUOTED.replace(/-j IP-MASQ-AGENT$/, '-j OLD');
  const otherChain = renderJumpSaveLine('FOO');
  const lines = ['-P POSTROUTING ACCEPT', OURS, toOld, '-A POSTROUTING -m comment --comment kube -j KUBE-POSTROUTING', quotedToOld, otherChain, toOld.replace('-A POSTROUTING', '-A OUTPUT')];
  assert.deepEqual(
    findRenamedJumps(lines, 'IP-MASQ-AGENT').map((r) => [r.line, r.target]),
    [
      [toOld, 'OLD'],
      [quotedToOld, 'OLD'],
    ],
  );
  assert.deepEqual(findRenamedJumps([OURS, otherChain], 'IP-MASQ-AGENT'), []);
  assert.equal(parseRuleLine('-A X -d 10.0.0.0/8 -j RETURN')?.comment, undefined);
});

test("judgeRenamedChain: ours only when every rule carries one of our comments (today's or v1.x') and one of our targets", () => {
  const ret = '-A OLD -d 10.0.0.0/8 -m comment --comment "ip-masq-agent: local traffic is not subject to MASQUERADE" -j RETURN';
  const oldRet = '-A OLD -d 10.0.0.0/8 -m comment --comment "ip-masq-agent: cluster-local traffic should not be subject to MASQUERADE" -m addrtype ! --dst-type LOCAL -j RETURN';
  const masq = '-A OLD -m comment --comment "ip-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)" -j MASQUERADE --random-fully';
  assert.deepEqual(judgeRenamedChain('OLD', ['-N OLD', ret, oldRet, masq]), { ours: true, rules: 3 });
  assert.deepEqual(judgeRenamedChain('OLD', ['-N OLD']), { ours: true, rules: 0 });
  assert.deepEqual(judgeRenamedChain('OLD', ['-N OLD', ret, '-A OLD -j MASQUERADE']), { ours: false, why: 'its rule -A OLD -j MASQUERADE is not one of ours' });
  const hop = ret.replace('-j RETURN', '-j KUBE-MARK-MASQ');
  assert.deepEqual(judgeRenamedChain('OLD', ['-N OLD', hop]), { ours: false, why: `its rule ${hop} is not one of ours` });
  assert.deepEqual(judgeRenamedChain('OLD', undefined), { ours: false, why: 'nat chain OLD cannot be listed' });
  assert.deepEqual(judgeRenamedChain('MASQUERADE', undefined), { ours: false, why: 'MASQUERADE is no chain of ours' });
  assert.deepEqual(judgeRenamedChain(undefined, undefined), { ours: false, why: 'the rule jumps nowhere' });
  assert.deepEqual(renamedRemovalLines('-A POSTROUTING -j OLD', 'OLD'), ['-D POSTROUTING -j OLD', '-F OLD', '-X OLD']);
});
