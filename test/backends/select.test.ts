// Backend selection at start: which commands it asks (each once), which it asks side by side,
// and that its log lines keep their order whichever answer comes first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend, shareLooks, type SelectOptions } from '../../src/backends/select.js';
import { createMemoryLogger } from '../observe/memory-logger.js';
import type { Runner } from '../../src/exec/runner.js';
import { gatedRunner, pump, scriptedRunner, settle, type Reply } from './iptables-helpers.js';

const VERSION = { stdout: 'iptables v1.8.9 (nf_tables)\n' };

function options(runner: Runner, extra: Partial<SelectOptions> = {}) {
  const log = createMemoryLogger();
  return { log, o: { backend: 'auto', iptablesMode: 'auto', chain: 'IP-MASQ-AGENT', runner, log, enableIPv6: false, ...extra } as SelectOptions };
}

test('--iptables-mode=nft: the version and every other form check are asked before any answer arrives', async () => {
  const { runner: answer } = scriptedRunner((argv) => (argv[1] === '--version' ? VERSION : {}));
  const gate = gatedRunner(answer);
  const { o, log } = options(gate.runner, { backend: 'iptables', iptablesMode: 'nft' });
  const selecting = selectBackend(o);
  await settle();
  assert.deepEqual([...gate.asked].sort(), ['ip6tables-legacy-save', 'iptables-legacy-save', 'iptables-nft --version', 'nft list tables']);
  const backend = await pump(selecting, gate);
  assert.equal(backend.name, 'iptables-nft');
  assert.equal(gate.asked.length, 4);
  assert.deepEqual(
    log.entries.map((e) => e.msg),
    ['backend selected', 'iptables backend detected'],
  );
});

test('auto on a host without kubelet chains: each looking command runs once (detection and leftover checks share answers)', async () => {
  const { runner, calls } = scriptedRunner((argv) => (argv[1] === '--version' ? VERSION : {}));
  const { o, log } = options(runner);
  const backend = await selectBackend(o);
  assert.equal(backend.name, 'iptables-nft');
  const asked = calls.map((c) => c.argv.join(' '));
  assert.deepEqual([...asked].sort(), [
    'ip6tables-legacy-save',
    'ip6tables-nft-save',
    'ip6tables-nft-save -t mangle',
    'iptables-legacy-save',
    'iptables-nft --version',
    'iptables-nft-save',
    'iptables-nft-save -t mangle',
    'nft list tables',
  ]);
  const detected = log.entries.find((e) => e.msg === 'iptables backend detected');
  assert.equal(detected?.fields['mode'], 'nft');
  assert.match(String(detected?.fields['reason']), /no kubelet chains found/);
  assert.equal(log.entries.find((e) => e.msg === 'backend selected')?.fields['backend'], 'iptables');
});

test('leftovers of two other forms: both removed and logged in the usual order, whichever check answers first', async () => {
  const replies: Record<string, Reply> = {
    'iptables-nft --version': VERSION,
    'iptables-legacy-save': { stdout: '*nat\n:POSTROUTING ACCEPT [0:0]\n:IP-MASQ-AGENT - [0:0]\n-A IP-MASQ-AGENT -j MASQUERADE\nCOMMIT\n' },
    'nft list tables': { stdout: 'table ip filter\ntable inet ip-masq-agent\n' },
    // A listing always starts with the policy line; without it the cleanup refuses to read it as "no jump".
    'iptables-legacy -w 5 -t nat -S POSTROUTING': { stdout: '-P POSTROUTING ACCEPT\n' },
  };
  const { runner: answer, calls } = scriptedRunner((argv) => replies[argv.join(' ')] ?? {});
  const gate = gatedRunner(answer);
  const { o, log } = options(gate.runner, { backend: 'iptables', iptablesMode: 'nft' });
  await pump(selectBackend(o), gate, 'lifo');
  const removed = log.entries.filter((e) => e.msg === 'removed rules of a backend not in use').map((e) => [e.fields['where'], e.fields['removed']]);
  assert.deepEqual(removed, [
    ['iptables-legacy IPv4', 'chain IP-MASQ-AGENT (1 rule)'],
    ['nftables', 'table inet ip-masq-agent'],
  ]);
  const asked = calls.map((c) => c.argv.join(' '));
  assert.ok(asked.includes('iptables-legacy -w 5 -t nat -X IP-MASQ-AGENT'), asked.join('\n'));
  assert.ok(asked.includes('nft delete table inet ip-masq-agent'), asked.join('\n'));
});

test('shareLooks: a looking command runs once for every caller; anything else runs each time', async () => {
  const { runner, calls } = scriptedRunner(() => ({ stdout: 'x' }));
  const looks = shareLooks(runner);
  await Promise.all([looks(['iptables-legacy-save']), looks(['iptables-legacy-save']), looks(['nft', 'list', 'tables']), looks(['nft', 'list', 'tables'])]);
  await looks(['iptables-nft', '-w', '5', '-t', 'nat', '-S', 'POSTROUTING']);
  await looks(['iptables-nft', '-w', '5', '-t', 'nat', '-S', 'POSTROUTING']);
  await looks(['iptables-nft-restore', '--noflush'], { input: '*nat\nCOMMIT\n' });
  await looks(['iptables-nft-restore', '--noflush'], { input: '*nat\nCOMMIT\n' });
  assert.deepEqual(
    calls.map((c) => c.argv[0]),
    ['iptables-legacy-save', 'nft', 'iptables-nft', 'iptables-nft', 'iptables-nft-restore', 'iptables-nft-restore'],
  );
});
