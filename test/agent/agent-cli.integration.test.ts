// The built agent's command line as a user meets it: usage errors exit 2 with a message on
// stderr and touch nothing, --help lists the flags, --version prints the version. Run inside a
// namespace of ours anyway, so a regression that started the agent could not touch the host.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { canUseNetns, createNamespace, deleteNamespace } from '../netns/netns.js';
import { runAgentToExit } from './agent-process.js';
import { inNs } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
let ns = '';
before(() => {
  if (!skip) ns = createNamespace('cli');
});
after(() => {
  if (ns) deleteNamespace(ns);
});

const packageVersion = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Nothing in the namespace's netfilter state: no nft table, no iptables rule of ours. */
function assertUntouched(): void {
  assert.equal(inNs(ns, ['nft', 'list', 'ruleset']).trim(), '');
  assert.ok(!inNs(ns, ['iptables-legacy-save']).includes('IP-MASQ-AGENT'));
}

const USAGE_ERRORS: readonly { args: string[]; stderr: RegExp }[] = [
  { args: ['--no-such-flag'], stderr: /flag provided but not defined: -no-such-flag/ },
  { args: ['--enable-ipv7'], stderr: /flag provided but not defined: -enable-ipv7 \(did you mean --enable-ipv6\?\)/ },
  { args: ['--backend=iptabels'], stderr: /invalid value "iptabels" for flag -backend: want one of iptables, nftables, auto/ },
  { args: ['--enable-ipv6=maybe'], stderr: /invalid boolean value "maybe" for -enable-ipv6/ },
  { args: ['--masq-chain=POSTROUTING'], stderr: /built-in chain/ },
  { args: ['--config'], stderr: /flag needs an argument: -config/ },
];

for (const { args, stderr } of USAGE_ERRORS) {
  test(`usage error ${args.join(' ')}: exit 2, the problem on stderr, nothing on stdout, no rules`, { skip }, () => {
    const r = runAgentToExit(ns, args);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, stderr);
    assert.match(r.stderr, /Run 'ip-masq-agent --help' for usage\./);
    assert.equal(r.stdout, '');
    assertUntouched();
  });
}

test('--help: exit 0 and every agent flag listed with its default', { skip }, () => {
  const r = runAgentToExit(ns, ['--help']);
  assert.equal(r.code, 0, r.stderr);
  for (const flag of ['--config', '--masq-chain', '--nomasq-all-reserved-ranges', '--enable-ipv6', '--random-fully', '--to-ports', '--backend', '--iptables-mode', '--healthz-bind-address', '--metrics-bind-address', '--v']) {
    assert.match(r.stdout, new RegExp(`^  ${flag}\\b`, 'm'), `${flag} listed`);
  }
  assert.match(r.stdout, /default "\/etc\/config\/ip-masq-agent"/);
  assert.match(r.stdout, /default "IP-MASQ-AGENT"/);
  assert.equal(r.stderr, '');
  assertUntouched();
});

test('--version: exit 0 and the package version', { skip }, () => {
  const r = runAgentToExit(ns, ['--version']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `ip-masq-agent ${packageVersion}\n`);
  assertUntouched();
});
