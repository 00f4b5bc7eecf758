import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags } from '../../src/cli/flags.js';
import { agentOptionsFromFlags } from '../../src/cli/agent-options.js';
import { UsageError } from '../../src/errors.js';

test('defaults match the reference agent', () => {
  const o = agentOptionsFromFlags(parseFlags([]));
  assert.equal(o.chain, 'IP-MASQ-AGENT');
  assert.equal(o.configPath, '/etc/config/ip-masq-agent');
  assert.equal(o.policy.randomFully, true);
  assert.equal(o.policy.enableIPv6, false);
  assert.equal(o.config.nomasqAllReservedRanges, false);
  assert.deepEqual(o.policy.toPorts, []);
  assert.equal(o.backend, 'iptables');
  assert.equal(o.iptablesMode, 'auto');
});

const goForms: [string, string[], string, string][] = [
  ['single dash bool', ['-enable-ipv6'], 'enable-ipv6', 'true'],
  ['double dash bool', ['--enable-ipv6'], 'enable-ipv6', 'true'],
  ['bool=false', ['--random-fully=false'], 'random-fully', 'false'],
  ['single dash bool=false', ['-random-fully=false'], 'random-fully', 'false'],
  ['bool=0', ['--random-fully=0'], 'random-fully', 'false'],
  ['bool=T', ['--enable-ipv6=T'], 'enable-ipv6', 'true'],
  ['--name=value', ['--masq-chain=MY-CHAIN'], 'masq-chain', 'MY-CHAIN'],
  ['--name value', ['--masq-chain', 'MY-CHAIN'], 'masq-chain', 'MY-CHAIN'],
  ['-name value', ['-masq-chain', 'MY-CHAIN'], 'masq-chain', 'MY-CHAIN'],
  ['klog --v=2', ['--v=2'], 'v', '2'],
  ['klog -v 4', ['-v', '4'], 'v', '4'],
  ['klog --logtostderr', ['--logtostderr'], 'logtostderr', 'true'],
  ['klog --logtostderr=false', ['--logtostderr=false'], 'logtostderr', 'false'],
  ['klog --log_dir', ['--log_dir=/var/log'], 'log_dir', '/var/log'],
  ['to-ports', ['--to-ports=1024-29999,32768-65535'], 'to-ports', '1024-29999,32768-65535'],
];
for (const [name, argv, flag, want] of goForms) {
  test(`Go flag form: ${name}`, () => {
    assert.equal(parseFlags(argv).values.get(flag), want);
  });
}

test('a bool flag does not swallow the next argument, and parsing stops at the first positional', () => {
  const f = parseFlags(['--enable-ipv6', 'false', '--v=2']);
  assert.equal(f.values.get('enable-ipv6'), 'true');
  assert.deepEqual(f.positional, ['false', '--v=2']);
  assert.equal(f.values.get('v'), '0');
});

test('-- ends flags', () => {
  assert.deepEqual(parseFlags(['--', '--v=2']).positional, ['--v=2']);
});

const bad: [string, string[], RegExp][] = [
  ['unknown flag with suggestion', ['--enable-ipv7'], /flag provided but not defined: -enable-ipv7 \(did you mean --enable-ipv6\?\)/],
  ['unknown flag', ['--frobnicate'], /flag provided but not defined: -frobnicate/],
  ['bad bool', ['--random-fully=maybe'], /invalid boolean value "maybe" for -random-fully/],
  ['missing value', ['--masq-chain'], /flag needs an argument: -masq-chain/],
  ['bad int', ['--v=high'], /invalid value "high" for flag -v/],
  ['bad choice', ['--backend=ebpf'], /want one of iptables, nftables, auto/],
];
for (const [name, argv, re] of bad) {
  test(`usage error: ${name}`, () => {
    assert.throws(() => parseFlags(argv), (e: unknown) => e instanceof UsageError && re.test(e.message));
  });
}

test('bad chain names and port ranges are usage errors that say what to write', () => {
  assert.throws(() => agentOptionsFromFlags(parseFlags(['--masq-chain=has space'])), /--masq-chain: chain name "has space" may not contain whitespace/);
  assert.throws(() => agentOptionsFromFlags(parseFlags(['--masq-chain=THIS-NAME-IS-LONGER-THAN-28-CHARS'])), /at most 28/);
  assert.throws(() => agentOptionsFromFlags(parseFlags(['--masq-chain=POSTROUTING'])), /built-in chain/);
  assert.throws(() => agentOptionsFromFlags(parseFlags(['--to-ports=30000-20000'])), /--to-ports: "30000-20000"/);
  assert.throws(() => agentOptionsFromFlags(parseFlags(['--to-ports=0-100'])), /--to-ports/);
  assert.throws(() => agentOptionsFromFlags(parseFlags(['--to-ports=1024-70000'])), /--to-ports/);
  assert.throws(() => agentOptionsFromFlags(parseFlags(['--to-ports=abc'])), /--to-ports/);
});

test('--to-ports parses ranges and single ports in order', () => {
  const o = agentOptionsFromFlags(parseFlags(['--to-ports=1024-29999,32768-65535,8080']));
  assert.deepEqual(
    o.policy.toPorts.map((r) => [r.from, r.to]),
    [[1024, 29999], [32768, 65535], [8080, 8080]],
  );
});

test('--help and --version are recognised', () => {
  assert.equal(parseFlags(['--help']).help, true);
  assert.equal(parseFlags(['-h']).help, true);
  assert.equal(parseFlags(['--version']).version, true);
});

test('a malformed bind address is a usage error naming the flag; empty and 0 disable', () => {
  assert.throws(() => agentOptionsFromFlags(parseFlags(['--healthz-bind-address=127.0.0.1'])), /--healthz-bind-address: "127.0.0.1" has no port/);
  assert.throws(() => agentOptionsFromFlags(parseFlags(['--metrics-bind-address=::1:80'])), /--metrics-bind-address/);
  assert.equal(agentOptionsFromFlags(parseFlags(['--metrics-bind-address=0'])).metricsBindAddress, '0');
  assert.equal(agentOptionsFromFlags(parseFlags(['--healthz-bind-address='])).healthzBindAddress, '');
});

test('--command-timeout takes a Go duration from 1s to 10m; the default is 30s', () => {
  assert.equal(agentOptionsFromFlags(parseFlags([])).commandTimeoutMs, 30_000);
  assert.equal(agentOptionsFromFlags(parseFlags(['--command-timeout=2s'])).commandTimeoutMs, 2000);
  assert.equal(agentOptionsFromFlags(parseFlags(['-command-timeout', '1m30s'])).commandTimeoutMs, 90_000);
  assert.throws(() => agentOptionsFromFlags(parseFlags(['--command-timeout=30'])), /invalid value "30" for flag -command-timeout: time: missing unit in duration "30"/);
  assert.throws(() => agentOptionsFromFlags(parseFlags(['--command-timeout=100ms'])), /want 1s to 10m/);
  assert.throws(() => agentOptionsFromFlags(parseFlags(['--command-timeout=1h'])), /want 1s to 10m/);
});
