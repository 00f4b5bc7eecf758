// The built agent's command line as a user meets it: usage errors exit 2 with a message on
// stderr and touch nothing, --help lists the flags, --version prints the version. Run inside a
// namespace of ours anyway, so a regression that started the agent could not touch the host.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canUseNetns, createNamespace, deleteNamespace } from '../netns/netns.js';
import { AGENT_MAIN, runAgentToExit } from './agent-process.js';
import { CHAIN, expectedSaveLines, inNs, jumpCount, ourSaveLines, usePrivateXtablesLock, withScene } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
if (!skip) usePrivateXtablesLock();
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
  { args: ['--masq-chain=KUBE-POSTROUTING'], stderr: /--masq-chain: "KUBE-POSTROUTING" starts with "KUBE", the prefix of Kubernetes/ },
  { args: ['--masq-chain=RETURN'], stderr: /--masq-chain: "RETURN" is the name of an iptables target/ },
  { args: ['--masq-chain=MASQUERADE'], stderr: /--masq-chain: "MASQUERADE" is the name of an iptables target/ },
  { args: [`--masq-chain=${'é'.repeat(15)}`], stderr: /is 30 bytes long \(UTF-8\); iptables allows at most 28/ },
  { args: ['--log_link=/tmp', '--enable-ipv7'], stderr: /flag provided but not defined: -enable-ipv7/ },
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
  for (const flag of [
    '--config',
    '--masq-chain',
    '--nomasq-all-reserved-ranges',
    '--enable-ipv6',
    '--random-fully',
    '--to-ports',
    '--backend',
    '--iptables-mode',
    '--healthz-bind-address',
    '--metrics-bind-address',
    '--v',
  ]) {
    assert.match(r.stdout, new RegExp(`^  ${flag}\\b`, 'm'), `${flag} listed`);
  }
  assert.match(r.stdout, /default "\/etc\/config\/ip-masq-agent"/);
  assert.match(r.stdout, /default "IP-MASQ-AGENT"/);
  assert.equal(r.stderr, '');
  assertUntouched();
});

test('--version: exit 0, the package version, then the Node.js runtime it runs on', { skip }, () => {
  const r = runAgentToExit(ns, ['--version']);
  assert.equal(r.code, 0, r.stderr);
  // The runtime is the node binary the agent was started with (process.execPath), so `kubectl exec
  // ... --version` shows the image's.
  assert.equal(r.stdout, `ip-masq-agent ${packageVersion}\nnode ${process.version}\n`);
  assertUntouched();
});

/** The built-in modules node loaded running the agent (or an empty script) with `args` (process.moduleLoadList, written at exit by a --require preload). */
function builtinsLoaded(args: readonly string[], script: 'agent' | 'empty' = 'agent'): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'ima-modules-'));
  try {
    const preload = join(dir, 'preload.cjs');
    const out = join(dir, 'modules.txt');
    writeFileSync(join(dir, 'empty.cjs'), '');
    writeFileSync(preload, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, process.moduleLoadList.join('\\n')));\n`);
    const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--require', preload, script === 'agent' ? AGENT_MAIN : join(dir, 'empty.cjs'), ...args], { encoding: 'utf8', timeout: 15_000 });
    assert.equal(r.status, 0, r.stderr);
    return readFileSync(out, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('NativeModule '))
      .map((l) => l.slice('NativeModule '.length));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("--version and --help load neither node's ES module loader nor the modules only the agent run needs", { skip }, () => {
  // Node.js 22 and later load the ES module loader for every CommonJS main file (an empty one
  // too): only what an empty script does not load is the agent's to avoid.
  const bare = new Set(builtinsLoaded([], 'empty'));
  const avoided = ['internal/modules/esm/loader', 'http', 'child_process', 'crypto', 'fs/promises', 'v8'].filter((m) => !bare.has(m));
  assert.ok(avoided.includes('http') && avoided.includes('child_process'), `an empty script loads ${[...bare].join(', ')}`);
  for (const args of [['--version'], ['--help']]) {
    const loaded = builtinsLoaded(args);
    // Not vacuous: the list holds what every run loads.
    assert.ok(loaded.includes('fs'), `the list is read: ${loaded.join(', ')}`);
    for (const m of avoided) {
      assert.ok(!loaded.includes(m), `${args.join(' ')} loaded ${m}`);
    }
  }
});

test('a plain config is read without the yaml library; a config only the library reads loads it', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ima-files-'));
  try {
    // Our own files the process loaded (require.cache), written at exit by a --require preload.
    const preload = join(dir, 'preload.cjs');
    const out = join(dir, 'files.txt');
    writeFileSync(preload, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, Object.keys(require.cache).join('\\n')));\n`);
    const cases = [
      { text: 'nonMasqueradeCIDRs:\n  - 10.244.0.0/16\nmasqLinkLocal: true\nresyncInterval: 1h\n', yaml: false },
      { text: 'nonMasqueradeCIDRs: &cidrs [10.244.0.0/16]\nresyncInterval: 1h\n', yaml: true },
    ];
    for (const { text, yaml } of cases) {
      await withScene(async ({ cm, startAgent }) => {
        cm.write(text);
        const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft'], { env: { NODE_OPTIONS: `--require ${preload}` } });
        await agent.waitForLog('rules applied');
        await agent.stop();
      });
      const files = readFileSync(out, 'utf8').split('\n');
      assert.ok(files.includes(AGENT_MAIN), `the list is read: ${files.join(', ')}`);
      assert.equal(
        files.some((f) => f.endsWith('/ip-masq-agent-yaml.js')),
        yaml,
        `${JSON.stringify(text)}: ${files.join(', ')}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no usable backend (iptables-nft not installed): one error line that says so, exit 1, no rules', { skip }, () => {
  // The agent finds its tools through PATH; an empty directory holds none of them.
  const dir = mkdtempSync(join(tmpdir(), 'ima-no-tools-'));
  try {
    const ip = execFileSync('sh', ['-c', 'command -v ip'], { encoding: 'utf8' }).trim();
    const args = ['--iptables-mode=nft', '--config=/nonexistent', '--healthz-bind-address=', '--metrics-bind-address='];
    const r = spawnSync(ip, ['netns', 'exec', ns, process.execPath, AGENT_MAIN, ...args], { encoding: 'utf8', timeout: 15_000, env: { ...process.env, PATH: dir } });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    const errors = r.stdout.split('\n').filter((l) => l.includes('"level":"error"'));
    assert.equal(errors.length, 1, r.stdout);
    assert.match(errors[0]!, /"msg":"cannot start: no usable netfilter backend"/);
    assert.match(errors[0]!, /iptables-nft is not installed/);
    assert.equal(r.stderr, '');
    assertUntouched();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the start line names the package version and the Node.js runtime', { skip }, async () => {
  await withScene(async ({ cm, startAgent }) => {
    cm.write('nonMasqueradeCIDRs:\n  - 10.244.0.0/16\nresyncInterval: 1h\n');
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft']);
    const start = await agent.waitForLog('ip-masq-agent starting');
    assert.equal(start.fields['version'], packageVersion);
    assert.equal(start.fields['node'], process.version);
  });
});

// Args in Go's forms, as DaemonSets that run the reference carry them. Go's flag parsing stops at
// the first non-flag argument and ignores the rest; the agent must run with those same values.

test('--random-fully false --masq-chain=X: runs as the reference does (random-fully on, default chain) and warns once', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write('nonMasqueradeCIDRs:\n  - 10.244.0.0/16\nresyncInterval: 1h\n');
    const agent = startAgent([`--config=${cm.file}`, '--iptables-mode=nft', '--random-fully', 'false', '--masq-chain=OTHER-CHAIN', '--enable-ipv6']);
    await agent.waitForLog((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv4');
    // The rules the reference writes with these args: default chain, --random-fully, IPv4 only.
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', ['10.244.0.0/16']));
    assert.equal(jumpCount(topo.node, 'nft', 'ipv4'), 1);
    assert.ok(!inNs(topo.node, ['iptables-nft-save', '-t', 'nat']).includes('OTHER-CHAIN'));
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv6'), []);
    const warnings = agent.matching((l) => l.level === 'warn' && l.msg.startsWith('ignoring'));
    assert.equal(warnings.length, 1, warnings.map((w) => w.raw).join('\n'));
    const w = warnings[0]!;
    assert.match(w.msg, /ignoring 3 command-line arguments from "false" on/);
    assert.match(w.msg, /did you mean --random-fully=false\?/);
    assert.match(w.msg, /"--masq-chain=OTHER-CHAIN", "--enable-ipv6" were ignored because parsing stopped before them/);
    assert.deepEqual(w.fields['ignored'], ['"false"', '"--masq-chain=OTHER-CHAIN"', '"--enable-ipv6"']);
    // The ignored flags really were ignored: no ipv6 family, the default chain in the start line.
    assert.equal(agent.matching((l) => l.fields['family'] === 'ipv6').length, 0);
    assert.equal(agent.stderr(), '');
  });
});

test('klog flags of both generations in Go forms (-v 4, bare bools, value flags), then a stray word: runs, -v 4 in force', { skip }, async () => {
  await withScene(async ({ topo, cm, startAgent }) => {
    cm.write('nonMasqueradeCIDRs:\n  - 10.244.0.0/16\nresyncInterval: 1h\n');
    const args = [
      `--config=${cm.file}`,
      '--iptables-mode=nft',
      '-logtostderr',
      '-alsologtostderr=false',
      '-log_link',
      '/tmp',
      '-logbuflevel',
      '0',
      '-log_backtrace_at',
      'x.go:1',
      '-stderrthreshold',
      'INFO',
      '-vmodule',
      'x=2',
      '-log_dir',
      '/tmp',
      '--add_dir_header',
      '--log_file',
      '/tmp/x.log',
      '--log_file_max_size',
      '1800',
      '--one_output',
      '--skip_headers',
      '--skip_log_headers=true',
      '-v',
      '4',
      'stray',
      '--enable-ipv6',
    ];
    const agent = startAgent(args);
    await agent.waitForLog((l) => l.msg === 'rules applied' && l.fields['family'] === 'ipv4');
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', ['10.244.0.0/16']));
    assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv6'), [], '--enable-ipv6 after the stray word is ignored');
    // -v 4 took "4" as its value: every command run is logged.
    assert.ok(agent.matching((l) => l.msg === 'command').length > 0, 'trace lines at -v 4');
    const w = agent.matching((l) => l.level === 'warn' && l.msg.startsWith('ignoring'));
    assert.equal(w.length, 1);
    assert.match(w[0]!.msg, /from "stray" on/);
    assert.match(w[0]!.msg, /"--enable-ipv6" was ignored because parsing stopped before it/);
  });
});

test("--masq-chain=KUBE-POSTROUTING: the agent and cleanup exit 2, and kube-proxy's chain is left exactly as it was", { skip }, () => {
  const kube = [
    '*nat',
    ':KUBE-POSTROUTING - [0:0]',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
    'COMMIT',
    '',
  ].join('\n');
  execFileSync('ip', ['netns', 'exec', ns, 'iptables-nft-restore', '--noflush'], { input: kube });
  const before = inNs(ns, ['iptables-nft', '-t', 'nat', '-S']);
  assert.match(before, /-A KUBE-POSTROUTING -j MARK/);
  try {
    for (const args of [['--masq-chain=KUBE-POSTROUTING'], ['cleanup', '--masq-chain=KUBE-POSTROUTING'], ['status', '--masq-chain=KUBE-POSTROUTING']]) {
      const r = runAgentToExit(ns, args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /--masq-chain: "KUBE-POSTROUTING" starts with "KUBE"/);
      assert.equal(inNs(ns, ['iptables-nft', '-t', 'nat', '-S']), before, `${args.join(' ')} left the nat table as it was`);
    }
    assert.ok(!before.includes(CHAIN));
  } finally {
    execFileSync('ip', ['netns', 'exec', ns, 'iptables-nft', '-t', 'nat', '-D', 'POSTROUTING', '-m', 'comment', '--comment', 'kubernetes postrouting rules', '-j', 'KUBE-POSTROUTING']);
    execFileSync('ip', ['netns', 'exec', ns, 'iptables-nft', '-t', 'nat', '-F', 'KUBE-POSTROUTING']);
    execFileSync('ip', ['netns', 'exec', ns, 'iptables-nft', '-t', 'nat', '-X', 'KUBE-POSTROUTING']);
    execFileSync('ip', ['netns', 'exec', ns, 'nft', 'flush', 'ruleset']);
  }
});
