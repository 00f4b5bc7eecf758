import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findInSaveOutput } from '../../src/backends/leftovers.js';
import { jumpComment } from '../../src/backends/iptables/constants.js';
import { CommandError } from '../../src/errors.js';
import type { Runner } from '../../src/exec/runner.js';
import { cli } from './cli-helpers.js';

/** One iptables variant and family as the fake kernel holds it. */
interface FakeTable {
  chain: boolean;
  rules: number;
  /** Our exact jump, this many times. */
  jumps: number;
  /** Other POSTROUTING rules (older forms of the jump, foreign rules), before ours. */
  other?: string[];
}

/**
 * A fake host: iptables-{nft,legacy} with *-save, -C/-D/-F/-X on the nat table, and nft with
 * `list tables` / `delete table`, keeping state so a second cleanup sees the first one's work.
 */
function fakeHost(opts: { chain?: string; installed?: string[]; xFails?: boolean } = {}) {
  const chain = opts.chain ?? 'IP-MASQ-AGENT';
  const installed = opts.installed ?? ['nft', 'legacy', 'nft-tool'];
  const tables = new Map<string, FakeTable>();
  const nftTables = new Set<string>();
  const ran: string[] = [];
  const table = (key: string): FakeTable => {
    let t = tables.get(key);
    if (!t) tables.set(key, (t = { chain: false, rules: 0, jumps: 0 }));
    return t;
  };
  const ok = (stdout = '') => ({ stdout, stderr: '', exitCode: 0 });
  const ourJump = `-A POSTROUTING -m comment --comment "${jumpComment(chain)}" -m addrtype ! --dst-type LOCAL -j ${chain}`;
  const postrouting = (t: FakeTable): string[] => [...(t.other ?? []), ...Array.from({ length: t.jumps }, () => ourJump)];
  const fail = (argv: readonly string[], code: number, stderr: string) => new CommandError(argv, code, stderr, 'other', `${argv.join(' ')}: exit ${code}`);
  const runner: Runner = async (argv, options = {}) => {
    ran.push(argv.join(' '));
    const bin = argv[0] ?? '';
    const okCodes = options.okExitCodes ?? [0];
    const answer = (code: number, stderr: string) => {
      if (okCodes.includes(code)) return { stdout: '', stderr, exitCode: code };
      throw fail(argv, code, stderr);
    };
    if (bin === 'nft') {
      if (!installed.includes('nft-tool')) throw new CommandError(argv, null, '', 'not-installed', 'nft is not installed');
      if (argv[1] === 'list') return ok([...nftTables].map((t) => `table ${t}\n`).join(''));
      if (argv[1] === 'delete') {
        nftTables.delete(argv.slice(3).join(' '));
        return ok();
      }
    }
    const m = /^(ip6?)tables-(nft|legacy)(-save|-restore)?$/.exec(bin);
    if (m) {
      const [, ip, mode, suffix] = m;
      const save = suffix === '-save';
      const restore = suffix === '-restore';
      if (!installed.includes(mode!)) throw new CommandError(argv, null, '', 'not-installed', `${bin} is not installed`);
      const key = `${mode} ${ip}`;
      if (save) {
        const t = tables.get(key);
        if (!t) return ok(''); // no table was ever created in this variant
        const lines = ['*nat', ':POSTROUTING ACCEPT [0:0]'];
        if (t.chain) lines.push(`:${chain} - [0:0]`);
        lines.push(...postrouting(t));
        for (let i = 0; i < t.rules; i++) lines.push(`-A ${chain} -d 10.${i}.0.0/16 -j RETURN`);
        return ok(`${lines.join('\n')}\nCOMMIT\n`);
      }
      const t = table(key);
      if (restore) {
        // All or nothing, as iptables-restore: every `-D` must find its rule.
        const next = { ...t, other: [...(t.other ?? [])] };
        for (const line of (options.input ?? '').split('\n').filter((l) => l.startsWith('-D POSTROUTING '))) {
          const rule = line.replace(/^-D /, '-A ');
          const at = next.other.indexOf(rule);
          if (rule === ourJump && next.jumps > 0) next.jumps--;
          else if (at >= 0) next.other.splice(at, 1);
          else return answer(1, `iptables-restore: line 2 failed`);
        }
        Object.assign(t, next);
        return ok();
      }
      const op = argv[argv.indexOf('nat') + 1];
      if (op === '-S' && argv.at(-1) === 'POSTROUTING') return ok(['-P POSTROUTING ACCEPT', ...postrouting(t)].map((l) => `${l}\n`).join(''));
      if (op === '-F') return t.chain ? ((t.rules = 0), ok()) : answer(1, 'iptables: No chain/target/match by that name.');
      if (op === '-X') {
        if (opts.xFails) throw fail(argv, 1, 'iptables v1.8.9: CHAIN_DEL failed (Device or resource busy)');
        if (t.chain && (t.jumps > 0 || (t.other ?? []).some((l) => l.endsWith(` -j ${chain}`)))) throw fail(argv, 4, 'iptables v1.8.9 (nf_tables):  CHAIN_DEL failed (Device or resource busy)');
        return t.chain ? ((t.chain = false), ok()) : answer(1, 'iptables: No chain/target/match by that name.');
      }
    }
    throw new Error(`fake host does not know ${argv.join(' ')}`);
  };
  return { runner, tables, nftTables, ran, set: (key: string, t: FakeTable) => tables.set(key, t) };
}

test('removes the chain and jump in every variant and family, and the nft table; a second run finds nothing', async () => {
  const host = fakeHost();
  host.set('nft ip', { chain: true, rules: 3, jumps: 1 });
  host.set('nft ip6', { chain: true, rules: 1, jumps: 2 });
  host.set('legacy ip', { chain: true, rules: 2, jumps: 1 });
  host.nftTables.add('inet ip-masq-agent');
  host.nftTables.add('ip kube-proxy');

  const first = await cli(['cleanup'], { runner: host.runner });
  assert.equal(first.code, 0, first.stderr);
  assert.equal(
    first.stdout,
    [
      'removed the jump in POSTROUTING and chain IP-MASQ-AGENT (3 rules) (iptables-nft IPv4)',
      'removed 2 jumps in POSTROUTING and chain IP-MASQ-AGENT (1 rule) (iptables-nft IPv6)',
      'removed the jump in POSTROUTING and chain IP-MASQ-AGENT (2 rules) (iptables-legacy IPv4)',
      'removed table inet ip-masq-agent (nftables)',
      'nothing to remove in: iptables-legacy IPv6',
      'clean: nothing of ip-masq-agent (chain IP-MASQ-AGENT, table inet ip-masq-agent) is left',
      '',
    ].join('\n'),
  );
  for (const t of host.tables.values()) assert.deepEqual(t, { chain: false, rules: 0, jumps: 0, other: [] });
  assert.deepEqual([...host.nftTables], ['ip kube-proxy'], 'other tables are left alone');

  const second = await cli(['cleanup'], { runner: host.runner });
  assert.equal(second.code, 0);
  assert.match(second.stdout, /^nothing to remove in: iptables-nft IPv4, iptables-nft IPv6, iptables-legacy IPv4, iptables-legacy IPv6, nftables\nclean: /);
});

test("every form of the jump goes (older releases' quoted comment, bare, duplicates); a rule that only mentions it stays", async () => {
  const host = fakeHost();
  const quoted = `-A POSTROUTING -m comment --comment "\\"${jumpComment('IP-MASQ-AGENT')}\\"" -m addrtype ! --dst-type LOCAL -j IP-MASQ-AGENT`;
  const lookalike = '-A POSTROUTING -m comment --comment "goes before -j IP-MASQ-AGENT in this chain" -j RETURN';
  host.set('nft ip', { chain: true, rules: 2, jumps: 2, other: [quoted, lookalike, '-A POSTROUTING -j IP-MASQ-AGENT'] });
  const first = await cli(['cleanup'], { runner: host.runner });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^removed 4 jumps in POSTROUTING and chain IP-MASQ-AGENT \(2 rules\) \(iptables-nft IPv4\)$/m);
  assert.deepEqual(host.tables.get('nft ip'), { chain: false, rules: 0, jumps: 0, other: [lookalike] });
  const second = await cli(['cleanup'], { runner: host.runner });
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /nothing to remove in: iptables-nft IPv4,/);
});

test('legacy is only looked at through *-save without -t, so no legacy table is created', async () => {
  const host = fakeHost();
  const r = await cli(['cleanup'], { runner: host.runner });
  assert.equal(r.code, 0);
  assert.deepEqual(
    host.ran.filter((c) => c.includes('legacy')),
    ['iptables-legacy-save', 'ip6tables-legacy-save'],
  );
  assert.equal(host.tables.size, 0);
});

test('a tool that is not installed is skipped, and the rest is still cleaned', async () => {
  const host = fakeHost({ installed: ['nft'] });
  host.set('nft ip', { chain: true, rules: 1, jumps: 1 });
  const r = await cli(['cleanup'], { runner: host.runner });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^skipped iptables-legacy IPv4: iptables-legacy-save is not installed$/m);
  assert.match(r.stdout, /^skipped nftables: nft is not installed$/m);
  assert.match(r.stdout, /^removed the jump in POSTROUTING and chain IP-MASQ-AGENT \(1 rule\) \(iptables-nft IPv4\)$/m);
});

test('what cannot be removed makes the exit code 1, with the reason on stderr', async () => {
  const host = fakeHost({ xFails: true });
  host.set('nft ip', { chain: true, rules: 1, jumps: 0 });
  const r = await cli(['cleanup'], { runner: host.runner });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^ip-masq-agent cleanup: iptables-nft IPv4: cannot remove chain IP-MASQ-AGENT \(1 rule\): .*-X IP-MASQ-AGENT/m);
  assert.match(r.stdout, /not clean: see the errors above/);
});

test('--masq-chain names the chain to remove; JSON lists removed, absent, skipped and left', async () => {
  const host = fakeHost({ chain: 'MY-MASQ' });
  host.set('nft ip', { chain: true, rules: 2, jumps: 1 });
  const r = await cli(['cleanup', '--masq-chain=MY-MASQ', '--output=json'], { runner: host.runner });
  assert.equal(r.code, 0);
  const out = JSON.parse(r.stdout);
  assert.equal(out.clean, true);
  assert.equal(out.chain, 'MY-MASQ');
  assert.deepEqual(out.removed, [{ target: 'iptables-nft IPv4', detail: 'the jump in POSTROUTING and chain MY-MASQ (2 rules)' }]);
  assert.deepEqual(out.absent, ['iptables-nft IPv6', 'iptables-legacy IPv4', 'iptables-legacy IPv6', 'nftables']);
  assert.deepEqual(out.left, []);
});

test('usage errors exit 2 and touch nothing', async () => {
  const host = fakeHost();
  for (const argv of [
    ['cleanup', 'all'],
    ['cleanup', '--masq-chain=POSTROUTING'],
    ['cleanup', '--force'],
  ]) {
    const r = await cli(argv, { runner: host.runner });
    assert.equal(r.code, 2, argv.join(' '));
    assert.match(r.stderr, /Run 'ip-masq-agent cleanup --help' for usage\./);
  }
  assert.deepEqual(host.ran, []);
});

test('--help shows an example', async () => {
  const r = await cli(['cleanup', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Examples:\n {2}kubectl -n kube-system delete ds ip-masq-agent/);
});

test('findInSaveOutput looks only at the nat table and counts the jumps to our chain', () => {
  const save = [
    '*filter',
    ':IP-MASQ-AGENT - [0:0]',
    'COMMIT',
    '*nat',
    ':POSTROUTING ACCEPT [0:0]',
    ':IP-MASQ-AGENT - [0:0]',
    ':IP-MASQ-AGENT-2 - [0:0]',
    '-A POSTROUTING -j IP-MASQ-AGENT-2',
    '-A POSTROUTING -m comment --comment "x" -j IP-MASQ-AGENT',
    '-A IP-MASQ-AGENT -j MASQUERADE',
    'COMMIT',
  ].join('\n');
  assert.deepEqual(findInSaveOutput(save, 'IP-MASQ-AGENT'), { chain: true, rules: 1, jumps: 1, renamed: [] });
  const lookalike = save.replace('COMMIT\n*nat', 'COMMIT\n*nat\n-A POSTROUTING -m comment --comment "see -j IP-MASQ-AGENT below" -j RETURN\n-A POSTROUTING -j IP-MASQ-AGENT');
  assert.deepEqual(findInSaveOutput(lookalike, 'IP-MASQ-AGENT'), { chain: true, rules: 1, jumps: 2, renamed: [] }, 'a comment that mentions the jump is no jump');
  assert.deepEqual(findInSaveOutput(save.replace('*nat', '*mangle'), 'IP-MASQ-AGENT'), { chain: false, rules: 0, jumps: 0, renamed: [] });
});

test("findInSaveOutput names the nat chains that are ours renamed (a rule with our jump's comment leads there, every rule in it ours)", () => {
  const comment = '"ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom IP-MASQ-AGENT chain"';
  const save = [
    '*nat',
    ':POSTROUTING ACCEPT [0:0]',
    ':OLD - [0:0]',
    ':THEIRS - [0:0]',
    `-A POSTROUTING -m comment --comment ${comment} -m addrtype ! --dst-type LOCAL -j OLD`,
    `-A POSTROUTING -m comment --comment ${comment} -m addrtype ! --dst-type LOCAL -j THEIRS`,
    '-A OLD -m comment --comment "ip-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)" -j MASQUERADE',
    '-A THEIRS -j MASQUERADE',
    'COMMIT',
  ].join('\n');
  assert.deepEqual(findInSaveOutput(save, 'IP-MASQ-AGENT').renamed, ['OLD']);
  assert.deepEqual(findInSaveOutput(save.replace('*nat', '*mangle'), 'IP-MASQ-AGENT').renamed, []);
});
