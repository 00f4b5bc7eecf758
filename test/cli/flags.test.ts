import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeIgnoredArgs, parseFlags } from '../../src/cli/flags.js';
import { cli } from './cli-helpers.js';
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
  assert.equal(o.policy.postroutingPosition, 'append');
  assert.equal(o.policy.masqueradeBit, 14);
});

test('--postrouting-position takes append or first; --iptables-masquerade-bit an integer 0 to 31, as kube-proxy', () => {
  const o = agentOptionsFromFlags(parseFlags(['--postrouting-position=first', '--iptables-masquerade-bit=0']));
  assert.equal(o.policy.postroutingPosition, 'first');
  assert.equal(o.policy.masqueradeBit, 0);
  assert.equal(agentOptionsFromFlags(parseFlags(['--iptables-masquerade-bit=31'])).policy.masqueradeBit, 31);
  assert.throws(
    () => parseFlags(['--postrouting-position=top']),
    (e: unknown) => e instanceof UsageError && /postrouting-position/.test(e.message) && /append/.test(e.message),
  );
  for (const bad of ['32', '-1', '999999999999']) {
    assert.throws(
      () => agentOptionsFromFlags(parseFlags([`--iptables-masquerade-bit=${bad}`])),
      (e: unknown) => e instanceof UsageError && /iptables-masquerade-bit/.test(e.message) && /0 to 31/.test(e.message),
      bad,
    );
  }
  assert.throws(() => parseFlags(['--iptables-masquerade-bit=x']), UsageError);
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
    assert.throws(
      () => parseFlags(argv),
      (e: unknown) => e instanceof UsageError && re.test(e.message),
    );
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
    [
      [1024, 29999],
      [32768, 65535],
      [8080, 8080],
    ],
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

// --- Go's stopping rule: values in force and the warning -------------------------------------

/** What the reference (Go `flag`) makes of argv: effective values, and the first ignored argument. */
const goStops: { name: string; argv: string[]; want: Record<string, string>; ignoredFrom?: string; hint?: RegExp }[] = [
  {
    name: 'bool flag followed by a bool word: the word stops parsing, the flag is on',
    argv: ['--random-fully', 'false', '--masq-chain=X'],
    want: { 'random-fully': 'true', 'masq-chain': 'IP-MASQ-AGENT' },
    ignoredFrom: 'false',
    hint: /did you mean --random-fully=false\?/,
  },
  { name: 'single-dash bool followed by 0', argv: ['-enable-ipv6', '0'], want: { 'enable-ipv6': 'true' }, ignoredFrom: '0', hint: /did you mean -enable-ipv6=false\?/ },
  {
    name: 'bool followed by "no" (not a Go bool, still the likely intent)',
    argv: ['--nomasq-all-reserved-ranges', 'no'],
    want: { 'nomasq-all-reserved-ranges': 'true' },
    ignoredFrom: 'no',
    hint: /did you mean --nomasq-all-reserved-ranges=false\?/,
  },
  { name: 'bool followed by "True"', argv: ['--enable-ipv6', 'True', '--v=2'], want: { 'enable-ipv6': 'true', v: '0' }, ignoredFrom: 'True', hint: /did you mean --enable-ipv6=true\?/ },
  {
    name: 'a stray word first: nothing is read',
    argv: ['run', '--enable-ipv6', '--masq-chain=X'],
    want: { 'enable-ipv6': 'false', 'masq-chain': 'IP-MASQ-AGENT' },
    ignoredFrom: 'run',
    hint: /"--enable-ipv6", "--masq-chain=X" were ignored because parsing stopped before them/,
  },
  {
    name: 'the program name repeated in args',
    argv: ['--v=2', '/ip-masq-agent', '--enable-ipv6'],
    want: { v: '2', 'enable-ipv6': 'false' },
    ignoredFrom: '/ip-masq-agent',
    hint: /looks like the program name/,
  },
  {
    name: 'a stray word in the middle',
    argv: ['--masq-chain=A', 'oops', '--masq-chain=B'],
    want: { 'masq-chain': 'A' },
    ignoredFrom: 'oops',
    hint: /"--masq-chain=B" was ignored because parsing stopped before it/,
  },
  { name: 'a value flag takes the next word, whatever it is', argv: ['--masq-chain', 'false', '--enable-ipv6'], want: { 'masq-chain': 'false', 'enable-ipv6': 'true' } },
  { name: 'a value flag takes a next word that looks like a flag', argv: ['--to-ports', '--enable-ipv6'], want: { 'to-ports': '--enable-ipv6', 'enable-ipv6': 'false' } },
  { name: '-v 4 takes 4', argv: ['-v', '4', '--enable-ipv6'], want: { v: '4', 'enable-ipv6': 'true' } },
  { name: '-v=4', argv: ['-v=4', '--enable-ipv6'], want: { v: '4', 'enable-ipv6': 'true' } },
  { name: 'a lone -- ends the flags', argv: ['--v=2', '--', '--enable-ipv6'], want: { v: '2', 'enable-ipv6': 'false' }, ignoredFrom: '--', hint: /a lone "--" ends the flags/ },
  { name: 'a lone - is a non-flag', argv: ['-', '--enable-ipv6'], want: { 'enable-ipv6': 'false' }, ignoredFrom: '-' },
  { name: 'an unknown flag after the stop is not an error (Go never reads it)', argv: ['x', '--no-such-flag', '--random-fully=maybe'], want: { 'random-fully': 'true' }, ignoredFrom: 'x' },
  { name: 'nothing ignored', argv: ['--random-fully=false', '--masq-chain', 'X'], want: { 'random-fully': 'false', 'masq-chain': 'X' } },
  { name: 'a trailing -- ignores nothing', argv: ['--enable-ipv6', '--'], want: { 'enable-ipv6': 'true' } },
];
for (const c of goStops) {
  test(`Go stopping rule: ${c.name}`, () => {
    const f = parseFlags(c.argv);
    for (const [flag, value] of Object.entries(c.want)) assert.equal(f.values.get(flag), value, flag);
    const w = describeIgnoredArgs(c.argv, f);
    if (c.ignoredFrom === undefined) {
      assert.equal(w, undefined);
      return;
    }
    assert.ok(w, 'a warning');
    assert.equal(w.ignored[0], JSON.stringify(c.ignoredFrom));
    assert.ok(w.message.includes(`from ${JSON.stringify(c.ignoredFrom)} on`), w.message);
    assert.match(w.message, /Go's flag parsing stops at the first argument that is not a flag/);
    if (c.hint) assert.match(w.message, c.hint);
    // The agent runs: the options build from the same flags without a usage error.
    agentOptionsFromFlags(f);
  });
}

test('the ignored-arguments warning stays short for a huge argv', () => {
  const argv = ['--random-fully', 'false', ...Array.from({ length: 10_000 }, (_, i) => `--masq-chain=${'X'.repeat(1000)}${i}`)];
  const w = describeIgnoredArgs(argv, parseFlags(argv));
  assert.ok(w);
  assert.equal(w.ignored.length, 11);
  assert.equal(w.ignored[10], '... and 9991 more');
  assert.match(w.ignored[1]!, /…" \(cut, 1014 bytes\)$/);
  assert.match(w.message, /and 9995 more were ignored/);
  const size = Buffer.byteLength(JSON.stringify(w));
  assert.ok(size < 3000, `warning is ${size} bytes`);
});

test('usage errors quote a huge value cut short', () => {
  assert.throws(
    () => parseFlags([`--random-fully=${'y'.repeat(1_000_000)}`]),
    (e: unknown) => e instanceof UsageError && e.message.length < 200 && /\(cut, 1000000 bytes\)/.test(e.message),
  );
  assert.throws(
    () => parseFlags([`--${'z'.repeat(1_000_000)}`]),
    (e: unknown) => e instanceof UsageError && e.message.length < 200,
  );
});

// --- klog flags of both generations --------------------------------------------------------

/** Every klog flag, v1 (glog) and v2, with its kind as Go registers it. */
const KLOG: [string, 'bool' | 'value'][] = [
  ['logtostderr', 'bool'],
  ['alsologtostderr', 'bool'],
  ['stderrthreshold', 'value'],
  ['vmodule', 'value'],
  ['log_backtrace_at', 'value'],
  ['log_dir', 'value'],
  ['log_link', 'value'],
  ['logbuflevel', 'value'],
  ['v', 'value'],
  ['add_dir_header', 'bool'],
  ['log_file', 'value'],
  ['log_file_max_size', 'value'],
  ['one_output', 'bool'],
  ['skip_headers', 'bool'],
  ['skip_log_headers', 'bool'],
];
for (const [name, kind] of KLOG) {
  for (const dash of ['-', '--']) {
    test(`klog flag ${dash}${name} (${kind}) is accepted in every Go form`, () => {
      const value = name === 'v' ? '3' : kind === 'bool' ? 'false' : 'x.go:1';
      // With =value.
      assert.equal(parseFlags([`${dash}${name}=${value}`, '--enable-ipv6']).values.get('enable-ipv6'), 'true');
      if (kind === 'bool') {
        // Bare, then the next flag is still read; a separate word stops parsing.
        assert.equal(parseFlags([`${dash}${name}`, '--enable-ipv6']).values.get('enable-ipv6'), 'true');
        const f = parseFlags([`${dash}${name}`, 'false', '--enable-ipv6']);
        assert.deepEqual([f.values.get('enable-ipv6'), f.positional[0]], ['false', 'false']);
      } else {
        // The next word is its value, and parsing goes on after it.
        const f = parseFlags([`${dash}${name}`, value, '--enable-ipv6']);
        assert.deepEqual([f.values.get(name), f.values.get('enable-ipv6'), f.positional], [value, 'true', []]);
        if (name !== 'v') {
          // Even when that word looks like a flag (Go does the same).
          const g = parseFlags([`${dash}${name}`, '--enable-ipv6', '--masq-chain=X']);
          assert.deepEqual([g.values.get('enable-ipv6'), g.values.get('masq-chain'), g.positional], ['false', 'X', []]);
        }
        assert.throws(() => parseFlags([`${dash}${name}`]), /flag needs an argument/);
      }
    });
  }
}

// --- --masq-chain names that are not ours to take ------------------------------------------

const refusedChains: [string, RegExp][] = [
  ['KUBE-POSTROUTING', /prefix of Kubernetes/],
  ['KUBE-MARK-MASQ', /prefix of Kubernetes/],
  ['KUBE-ROUTER-POSTROUTING', /prefix of Kubernetes/],
  ['kube-masq', /prefix of Kubernetes/],
  ['CNI-HOSTPORT-MASQ', /CNI bridge/],
  ['cali-nat-outgoing', /Calico/],
  ['CILIUM_POST_nat', /Cilium/],
  ['FLANNEL-POSTRTG', /flannel/],
  ['WEAVE', /Weave/],
  ['DOCKER-USER', /Docker/],
  ['ISTIO_OUTPUT', /Istio/],
  ['LIBVIRT_PRT', /libvirt/],
  ['ANTREA-POSTROUTING', /Antrea/],
  ['AWS-SNAT-CHAIN-0', /AWS VPC CNI/],
  ['OVN-KUBE-SNAT-MGMTPORT', /OVN-Kubernetes/],
  ['RETURN', /name of an iptables target/],
  ['ACCEPT', /name of an iptables target/],
  ['DROP', /name of an iptables target/],
  ['QUEUE', /name of an iptables target/],
  ['MASQUERADE', /name of an iptables target/],
  ['masquerade', /name of an iptables target/],
  ['SNAT', /name of an iptables target/],
  ['DNAT', /name of an iptables target/],
  ['REDIRECT', /name of an iptables target/],
  ['MARK', /name of an iptables target/],
  ['LOG', /name of an iptables target/],
  ['REJECT', /name of an iptables target/],
  ['NFQUEUE', /name of an iptables target/],
  ['POSTROUTING', /built-in chain/],
  ['prerouting', /built-in chain/],
  ['OUTPUT', /built-in chain/],
  ['é'.repeat(15), /30 bytes long \(UTF-8\); iptables allows at most 28/],
  ['A'.repeat(29), /29 bytes long/],
  ['TAB\tNAME', /control characters|whitespace/],
  ['BELL\u0007', /control characters/],
];
for (const [name, re] of refusedChains) {
  test(`--masq-chain=${JSON.stringify(name)} is refused at start with a clear message`, () => {
    assert.throws(
      () => agentOptionsFromFlags(parseFlags([`--masq-chain=${name}`])),
      (e: unknown) => e instanceof UsageError && /^--masq-chain: /.test(e.message) && re.test(e.message),
    );
  });
}

test('names of our own are accepted, up to 28 bytes', () => {
  for (const name of ['IP-MASQ-AGENT', 'MY-MASQ', 'C', 'A'.repeat(28), 'é'.repeat(14), 'MASQ-KUBE', 'IP-MASQ-KUBE', 'RETURNS-MASQ']) {
    assert.equal(agentOptionsFromFlags(parseFlags([`--masq-chain=${name}`])).chain, name);
  }
});

test('cleanup, status and render refuse the same names with exit 2, running nothing', async () => {
  for (const command of ['cleanup', 'status', 'render']) {
    for (const name of ['KUBE-POSTROUTING', 'RETURN', 'é'.repeat(15)]) {
      const r = await cli([command, `--masq-chain=${name}`]);
      assert.equal(r.code, 2, `${command} ${name}: ${r.stderr}`);
      assert.match(r.stderr, /--masq-chain: /);
    }
  }
});

test('--command-timeout takes a Go duration from 1s to 10m; the default is 30s', () => {
  assert.equal(agentOptionsFromFlags(parseFlags([])).commandTimeoutMs, 30_000);
  assert.equal(agentOptionsFromFlags(parseFlags(['--command-timeout=2s'])).commandTimeoutMs, 2000);
  assert.equal(agentOptionsFromFlags(parseFlags(['-command-timeout', '1m30s'])).commandTimeoutMs, 90_000);
  assert.throws(() => agentOptionsFromFlags(parseFlags(['--command-timeout=30'])), /invalid value "30" for flag -command-timeout: time: missing unit in duration "30"/);
  assert.throws(() => agentOptionsFromFlags(parseFlags(['--command-timeout=100ms'])), /want 1s to 10m/);
  assert.throws(() => agentOptionsFromFlags(parseFlags(['--command-timeout=1h'])), /want 1s to 10m/);
});
