// The nftables backend against the real nft and kernel, inside namespaces this file creates and
// always deletes. Nothing here touches the machine's own network namespace.
import { after, before, describe, it, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { join } from 'node:path';
import type { Runner } from '../../src/exec/runner.js';
import { formatCidr, type Cidr } from '../../src/net/cidr.js';
import type { Backend } from '../../src/backends/backend.js';
import type { FamilyPolicy } from '../../src/policy/types.js';
import { createNftablesBackend } from '../../src/backends/nftables/nftables-backend.js';
import { NFT_NAMES } from '../../src/backends/nftables/names.js';
import { renderNftScript } from '../../src/backends/nftables/render.js';
import { ADDR, canUseNetns, createNamespace, createTopology, deleteNamespace, nsRun, nsSpawn, nsTry, sourceSeenBy, startPeerServer, type Topology } from '../netns/netns.js';
import { netnsRunner } from '../netns/netns-runner.js';
import { NFT_HAS_NO_JUMP, NFT_HAS_NO_POSITION, runBackendContract } from './contract.js';
import { UPDATE_GOLDEN, familyPolicy, loadNftGoldenCases, stableNftJson } from './nftables-fixtures.js';
import { applyPolicy, readOwned } from './sync.js';

const usable = canUseNetns() && spawnSync('nft', ['--version'], { stdio: 'ignore' }).status === 0;
const skip = usable ? false : 'needs root, iproute2 and nft';

const LIST = ['nft', '-j', 'list', 'table', 'inet', 'ip-masq-agent'];

const RECREATE_SET_WITH_OTHER_FLAGS = [
  'delete chain inet ip-masq-agent postrouting4',
  'delete set inet ip-masq-agent nonmasq4',
  'add set inet ip-masq-agent nonmasq4 { type ipv4_addr; flags constant; elements = { 192.0.2.1 } }',
  'add chain inet ip-masq-agent postrouting4 { type nat hook postrouting priority 50; policy accept; }',
  'add rule inet ip-masq-agent postrouting4 ip daddr @nonmasq4 return',
  '',
].join('\n');

/** A runner inside `ns` that also counts the commands it ran. */
function countingRunner(ns: string): { runner: Runner; calls: (readonly string[])[] } {
  const inner = netnsRunner(ns);
  const calls: (readonly string[])[] = [];
  return {
    calls,
    runner: (argv, options) => {
      calls.push(argv);
      return inner(argv, options);
    },
  };
}

describe('nftables golden scripts load into the real nft and read back as expected', { skip }, () => {
  let ns = '';
  before(() => {
    ns = createNamespace('nftgold');
  });
  after(() => deleteNamespace(ns));

  for (const c of loadNftGoldenCases()) {
    it(c.name, async () => {
      nsTry(ns, ['nft', 'delete', 'table', 'inet', 'ip-masq-agent']);
      const backend = createNftablesBackend(netnsRunner(ns));
      if (c.remove.length > 0 || c.existing) {
        // Removal and replacement need something there: start from a dual-stack table.
        const dual = loadNftGoldenCases().find((g) => g.name === 'ipv6');
        nsRun(ns, ['nft', '-f', '-'], renderNftScript(dual!.policies));
      }
      if (c.existing) {
        // What the replace-by-name form is for: our set re-created with other flags.
        nsRun(ns, ['nft', '-f', '-'], RECREATE_SET_WITH_OTHER_FLAGS);
      }
      nsRun(ns, ['nft', '-f', '-'], readFileSync(join(c.dir, 'script.nft'), 'utf8'));
      for (const p of c.policies) assert.deepEqual(await readOwned(backend, p.family), backend.expected(p), `${c.name} ${p.family}`);
      for (const family of c.remove) assert.deepEqual(await readOwned(backend, family), [], `${c.name}: ${family} removed`);
      if (c.remove.length > 0 || c.existing) {
        const kept = loadNftGoldenCases()
          .find((g) => g.name === 'ipv6')!
          .policies.filter((p) => !c.remove.includes(p.family));
        for (const p of kept) assert.deepEqual(await readOwned(backend, p.family), backend.expected(p), `${c.name}: ${p.family} kept`);
        return;
      }
      const listed = nsRun(ns, LIST);
      const goldenPath = join(c.dir, 'list.json');
      const same = existsSync(goldenPath) && isDeepStrictEqual(stableNftJson(listed), stableNftJson(readFileSync(goldenPath, 'utf8')));
      if (UPDATE_GOLDEN) {
        // Rewritten only when the meaning changed, not for new handle numbers.
        if (!same) writeFileSync(goldenPath, `${JSON.stringify(JSON.parse(listed), null, 1)}\n`);
      } else {
        assert.deepEqual(stableNftJson(listed), stableNftJson(readFileSync(goldenPath, 'utf8')), `${goldenPath} is stale`);
      }
    });
  }
});

/** The runner, noting each command's stdin. */
function recordingInput(runner: Runner, piped: string[]): Runner {
  return async (argv, o) => {
    if (o?.input !== undefined) piped.push(o.input);
    return runner(argv, o);
  };
}

if (usable) {
  runBackendContract(
    'nftables (real nft, netns)',
    async () => {
      const ns = createNamespace('nftc');
      const runner = netnsRunner(ns);
      const piped: string[] = [];
      return {
        backend: createNftablesBackend(recordingInput(runner, piped)),
        piped,
        damage: async (family) => {
          await runner(['nft', 'flush', 'set', 'inet', 'ip-masq-agent', NFT_NAMES[family].set]);
        },
        dispose: () => deleteNamespace(ns),
      };
    },
    { noStrayJumps: NFT_HAS_NO_JUMP, noPosition: NFT_HAS_NO_POSITION },
  );
} else {
  test('nftables (real nft, netns): backend contract', { skip }, () => undefined);
}

describe('nftables backend against the real nft', { skip }, () => {
  let ns = '';
  before(() => {
    ns = createNamespace('nftb');
  });
  after(() => deleteNamespace(ns));

  const v4 = familyPolicy({ family: 'ipv4', linkLocal: true, cidrs: ['10.0.0.0/8', '192.0.2.0/24'], randomFully: true, toPorts: [] });
  const v6 = familyPolicy({ family: 'ipv6', linkLocal: true, cidrs: ['2001:db8:200::/48'], randomFully: true, toPorts: [] });

  it('heals a deleted table and a flushed chain at the next apply', async () => {
    const backend = createNftablesBackend(netnsRunner(ns));
    await applyPolicy(backend, v4);
    await applyPolicy(backend, v6);
    nsRun(ns, ['nft', 'delete', 'table', 'inet', 'ip-masq-agent']);
    assert.deepEqual(await readOwned(backend, 'ipv4'), []);
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
    nsRun(ns, ['nft', 'flush', 'chain', 'inet', 'ip-masq-agent', 'postrouting4']);
    assert.notDeepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
    await backend.cleanup('ipv4');
  });

  it('heals a set someone re-created with other flags (the blind add is refused; replaced by name)', async () => {
    const backend = createNftablesBackend(netnsRunner(ns));
    await applyPolicy(backend, v4);
    await applyPolicy(backend, v6);
    nsRun(ns, ['nft', '-f', '-'], RECREATE_SET_WITH_OTHER_FLAGS);
    assert.notEqual(nsTry(ns, ['nft', '-f', '-'], renderNftScript([v4])).code, 0, 'the blind script alone is refused');
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
    assert.deepEqual(await readOwned(backend, 'ipv6'), backend.expected(v6));
    await backend.cleanup('ipv4');
    await backend.cleanup('ipv6');
  });

  it('a dormant table holding a renamed chain of ours, a chain it jumps to, a map, a counter and a ct helper: IPv4 wakes and rebuilds the table, IPv6 keeps its objects', async () => {
    const backend = createNftablesBackend(netnsRunner(ns));
    await applyPolicy(backend, v4);
    await applyPolicy(backend, v6);
    const T = 'inet ip-masq-agent';
    nsRun(ns, ['nft', 'rename', 'chain', ...T.split(' '), 'postrouting4', 'renamed']);
    nsRun(
      ns,
      ['nft', '-f', '-'],
      [
        `add chain ${T} target`,
        `add rule ${T} renamed jump target`,
        `add counter ${T} cnt`,
        `add set ${T} s2 { type ipv4_addr; }`,
        `add rule ${T} target ip daddr @s2 counter name cnt`,
        `add map ${T} m { type ipv4_addr : ipv4_addr; }`,
        `add ct helper ${T} h { type "ftp" protocol tcp; }`,
        `add table ${T} { flags dormant; }`,
        '',
      ].join('\n'),
    );
    const seen = await readOwned(backend, 'ipv4');
    const tableLines = seen.filter((l) => l.startsWith('table '));
    // nft 1.0.6 misprints the flags or cuts the listing off there (then nothing else shows).
    assert.match(tableLines[0] ?? '', /^table flags /);
    assert.deepEqual(await readOwned(backend, 'ipv6'), tableLines.length > 1 ? backend.expected(v6) : [], 'no table lines for IPv6');
    assert.notEqual(nsTry(ns, ['nft', '-f', '-'], renderNftScript([v4])).code, 0, 'the blind script alone is refused');
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
    assert.deepEqual(await readOwned(backend, 'ipv6'), backend.expected(v6));
    const listing = nsRun(ns, ['nft', 'list', 'table', ...T.split(' ')]);
    for (const gone of ['dormant', 'renamed', 'target', 'cnt', 's2', ' m ', 'ct helper']) assert.ok(!listing.includes(gone), `${gone} is gone:\n${listing}`);
    await backend.cleanup('ipv4');
    await backend.cleanup('ipv6');
  });

  it('an empty dormant table (nft 1.0.6 cuts its listing off): read says so instead of failing; apply fills it', async () => {
    const backend = createNftablesBackend(netnsRunner(ns));
    nsTry(ns, ['nft', 'delete', 'table', 'inet', 'ip-masq-agent']);
    nsRun(ns, ['nft', '-f', '-'], 'add table inet ip-masq-agent { flags dormant; }\n');
    const seen = await readOwned(backend, 'ipv4');
    assert.equal(seen.length, 1);
    assert.match(seen[0]!, /^table flags /);
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
    await backend.cleanup('ipv4');
  });

  it('heals a chain someone re-hooked with another priority and policy', async () => {
    const backend = createNftablesBackend(netnsRunner(ns));
    await applyPolicy(backend, v4);
    nsRun(ns, ['nft', '-f', '-'], 'delete chain inet ip-masq-agent postrouting4\nadd chain inet ip-masq-agent postrouting4 { type nat hook postrouting priority 50; policy drop; }\n');
    assert.notDeepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
    await applyPolicy(backend, v4);
    assert.deepEqual(await readOwned(backend, 'ipv4'), backend.expected(v4));
    await backend.cleanup('ipv4');
  });

  it('never touches another table, and cleanup leaves it alone', async () => {
    nsRun(ns, ['nft', 'add', 'table', 'inet', 'someone-else']);
    nsRun(ns, ['nft', 'add', 'chain', 'inet', 'someone-else', 'post', '{ type nat hook postrouting priority srcnat; policy accept; }']);
    nsRun(ns, ['nft', 'add', 'rule', 'inet', 'someone-else', 'post', 'ip daddr 192.0.2.1 counter']);
    const before = nsRun(ns, ['nft', 'list', 'table', 'inet', 'someone-else']);
    const backend = createNftablesBackend(netnsRunner(ns));
    await applyPolicy(backend, v4);
    await applyPolicy(backend, v6);
    await backend.cleanup('ipv4');
    await backend.cleanup('ipv6');
    assert.equal(nsRun(ns, ['nft', 'list', 'table', 'inet', 'someone-else']), before);
    assert.equal(nsTry(ns, LIST).code, 1, 'our table is gone');
    nsRun(ns, ['nft', 'delete', 'table', 'inet', 'someone-else']);
  });

  it("reports kube-proxy's masquerade at srcnat (through its jump) as shadowing, and nothing once it is gone", async () => {
    const K = 'ip kube-proxy';
    nsRun(
      ns,
      ['nft', '-f', '-'],
      [
        `add table ${K}`,
        `add chain ${K} masquerading`,
        `add rule ${K} masquerading meta mark & 0x00004000 == 0 return`,
        `add rule ${K} masquerading masquerade fully-random`,
        `add chain ${K} nat-postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
        `add rule ${K} nat-postrouting jump masquerading`,
        '',
      ].join('\n'),
    );
    const backend = createNftablesBackend(netnsRunner(ns));
    const plan = await applyPolicy(backend, v4);
    assert.deepEqual(plan.shadowing, [{ rule: 'table ip kube-proxy chain nat-postrouting prio 100: jump masquerading: masquerade', owner: 'kube-proxy' }]);
    assert.deepEqual((await applyPolicy(backend, v6)).shadowing, [], 'an ip table sees no IPv6 packets');
    nsRun(ns, ['nft', 'delete', 'table', ...K.split(' ')]);
    assert.deepEqual(backend.plan(await backend.read('ipv4'), v4).shadowing, []);
    await backend.cleanup('ipv4');
    await backend.cleanup('ipv6');
  });

  it('applies 10,000 CIDRs per family in one transaction each and reads them back equal', async () => {
    const cidrs4: string[] = [];
    const cidrs6: string[] = [];
    for (let i = 0; i < 10_000; i++) {
      // Every other /30 of 10.244.0.0/16, and /64s of 2001:db8::/32: no two adjacent, none nested.
      const c4: Cidr = { family: 'ipv4', base: 0x0af40000n + BigInt(i * 8), prefix: 30 };
      const c6: Cidr = { family: 'ipv6', base: (0x20010db8n << 96n) + (BigInt(i * 2) << 64n), prefix: 64 };
      cidrs4.push(formatCidr(c4));
      cidrs6.push(formatCidr(c6));
    }
    const big4 = familyPolicy({ family: 'ipv4', linkLocal: true, cidrs: cidrs4, randomFully: true, toPorts: [] });
    const big6 = familyPolicy({ family: 'ipv6', linkLocal: true, cidrs: cidrs6, randomFully: true, toPorts: [] });
    const { runner, calls } = countingRunner(ns);
    const backend = createNftablesBackend(runner);
    await applyPolicy(backend, big4);
    await applyPolicy(backend, big6);
    const sync = ['nft -j list table inet ip-masq-agent', 'nft -j list chains', 'nft -f -'];
    assert.deepEqual(
      calls.map((a) => a.join(' ')),
      [...sync, ...sync],
    );
    const want4 = backend.expected(big4);
    assert.equal(want4.filter((l) => l.startsWith('element ')).length, 10_001);
    assert.deepEqual(await readOwned(backend, 'ipv4'), want4);
    assert.deepEqual(await readOwned(backend, 'ipv6'), backend.expected(big6));
    await backend.cleanup('ipv4');
    await backend.cleanup('ipv6');
    assert.equal(nsTry(ns, LIST).code, 1);
  });
});

// ---- traffic: who does the outside host see? ----

// A server that answers each connection with the address and port it saw.
const PORT_SERVER_JS = `
const net = require('node:net');
const srv = net.createServer((s) => { s.end(String(s.remoteAddress).replace(/^::ffff:/, '') + ' ' + s.remotePort + '\\n'); });
srv.listen({ port: Number(process.argv[1]), host: '::', ipv6Only: false }, () => process.stdout.write('ready\\n'));
setTimeout(() => process.exit(0), 600000).unref();
`;

async function startPortServer(ns: string, port: number): Promise<() => void> {
  const child = nsSpawn(ns, [process.execPath, '-e', PORT_SERVER_JS, String(port)]);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`port server exited with ${code}`)));
  });
  return () => void child.kill('SIGKILL');
}

describe('nftables backend: real traffic pod -> node -> outside', { skip }, () => {
  let topo: Topology | undefined;
  let stopServer: (() => void) | undefined;
  let stopPortServer: (() => void) | undefined;
  let backend: Backend;
  before(async () => {
    topo = createTopology();
    stopServer = (await startPeerServer(topo.outside)).stop;
    stopPortServer = await startPortServer(topo.outside, 8081);
    backend = createNftablesBackend(netnsRunner(topo.node));
  });
  after(() => {
    stopServer?.();
    stopPortServer?.();
    topo?.cleanup();
  });
  const t = (): Topology => topo!;
  const policy4 = (cidrs: string[], extra: Partial<FamilyPolicy> = {}): FamilyPolicy => ({
    ...familyPolicy({ family: 'ipv4', linkLocal: true, cidrs, randomFully: true, toPorts: [] }),
    ...extra,
  });

  it('IPv4: masquerades to the node address except for exempt destinations', async () => {
    await applyPolicy(backend, policy4(['10.244.0.0/16']));
    assert.equal(sourceSeenBy(t().pod, ADDR.outside4), ADDR.node4);
    assert.equal(sourceSeenBy(t().pod, ADDR.outsideExempt4), ADDR.pod4);
    assert.equal(sourceSeenBy(t().pod, ADDR.outsideDoc4), ADDR.node4);
  });

  it('IPv4: a new policy takes effect for new connections (198.51.100.0/24 becomes exempt)', async () => {
    await applyPolicy(backend, policy4(['10.0.0.0/8', '198.51.100.0/24']));
    assert.equal(sourceSeenBy(t().pod, ADDR.outsideDoc4), ADDR.pod4);
    assert.equal(sourceSeenBy(t().pod, ADDR.outsideExempt4), ADDR.pod4);
    assert.equal(sourceSeenBy(t().pod, ADDR.outside4), ADDR.node4);
  });

  it('IPv6: masquerades to the node address except for 2001:db8:200::/48, independently of IPv4', async () => {
    const v6 = familyPolicy({ family: 'ipv6', linkLocal: true, cidrs: ['2001:db8:200::/48'], randomFully: true, toPorts: [] });
    await applyPolicy(backend, v6);
    assert.equal(sourceSeenBy(t().pod, ADDR.outside6), ADDR.node6);
    assert.equal(sourceSeenBy(t().pod, ADDR.outsideExempt6), ADDR.pod6);
    assert.equal(sourceSeenBy(t().pod, ADDR.outside4), ADDR.node4, 'IPv4 untouched by the IPv6 apply');
  });

  it('--to-ports: masqueraded connections take source ports from the given ranges only, from each of them', async () => {
    // Ranges much wider than the number of connections: closed connections stay in conntrack
    // (TIME_WAIT) and a range with every port taken would make NAT drop the next SYN.
    const toPorts = [
      { from: 40000, to: 40099, text: '40000-40099' },
      { from: 50000, to: 50099, text: '50000-50099' },
    ];
    await applyPolicy(backend, policy4(['10.244.0.0/16'], { toPorts }));
    const seen = new Set<string>();
    for (let i = 0; i < 24; i++) {
      const [addr, port] = nsRun(t().pod, [process.execPath, '-e', CLIENT_JS, ADDR.outside4, '8081']).trim().split(' ');
      assert.equal(addr, ADDR.node4);
      const p = Number(port);
      assert.ok((p >= 40000 && p <= 40099) || (p >= 50000 && p <= 50099), `source port ${p} outside --to-ports`);
      seen.add(p < 45000 ? 'low' : 'high');
    }
    // Each range has probability 1/2 per connection: missing one in 24 tries happens 1 in 8 million runs.
    assert.deepEqual([...seen].sort(), ['high', 'low']);
  });

  it('cleanup of both families stops masquerading', async () => {
    await backend.cleanup('ipv4');
    await backend.cleanup('ipv6');
    assert.equal(sourceSeenBy(t().pod, ADDR.outside4), ADDR.pod4);
    assert.equal(sourceSeenBy(t().pod, ADDR.outside6), ADDR.pod6);
    assert.equal(nsTry(t().node, LIST).code, 1);
  });
});

const CLIENT_JS = `
const net = require('node:net');
const s = net.connect({ host: process.argv[1], port: Number(process.argv[2]), timeout: 3000 });
let out = '';
s.on('data', (d) => { out += d; });
s.on('end', () => { process.stdout.write(out); process.exit(0); });
s.on('timeout', () => { process.stderr.write('timeout\\n'); process.exit(2); });
s.on('error', (e) => { process.stderr.write(String(e) + '\\n'); process.exit(3); });
`;
