// Drift the agent must see in what decides traffic, on iptables-nft and iptables-legacy: our chain
// renamed with `iptables -E` (its jump follows it, so the old rules keep deciding beside a new
// chain), and a wrapper whose `-S POSTROUTING` prints nothing (read as "no jump", it added one
// more jump at every sync). The built agent runs in a pod/node/outside scene with real traffic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import type { Family } from '../../src/net/cidr.js';
import { ADDR, canUseNetns, nsRun, sourceSeenBy } from '../netns/netns.js';
import { runAgentToExit } from './agent-process.js';
import {
  CHAIN,
  JUMP_LINE,
  createShim,
  expectedSaveLines,
  httpGet,
  iptablesBinary,
  inNs,
  jumpCount,
  metricSample,
  natCommand,
  ourSaveLines,
  usePrivateXtablesLock,
  waitUntil,
  withScene,
  type Mode,
} from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
if (!skip) usePrivateXtablesLock();

const HEALTHZ = '127.0.0.1:10264';
const METRICS = '127.0.0.1:10265';
const HTTP_FLAGS = [`--healthz-bind-address=${HEALTHZ}`, `--metrics-bind-address=${METRICS}`];
const config = (cidrs: readonly string[], resync: string): string => `nonMasqueradeCIDRs:\n${cidrs.map((c) => `  - ${c}\n`).join('')}resyncInterval: ${resync}\n`;
const FIRST = ['10.244.0.0/16'];
const SECOND = ['10.244.0.0/16', '198.51.100.0/24'];
const MODES: readonly Mode[] = ['nft', 'legacy'];

/** The whole nat table in `ns` as `*-save` prints it, without its comment and counter lines. */
function natSave(ns: string, mode: Mode, family: Family = 'ipv4'): string[] {
  return inNs(ns, [iptablesBinary(mode, family, '-save'), '-t', 'nat'])
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** `status` of the built agent in `ns`, with the flags the agent ran with. */
function status(ns: string, mode: Mode, configFile: string): { code: number | null; stdout: string; stderr: string } {
  return runAgentToExit(ns, ['status', `--config=${configFile}`, `--iptables-mode=${mode}`]);
}

for (const mode of MODES) {
  test(
    `iptables-${mode}: our chain renamed with iptables -E, then a config change exempting 198.51.100.0/24: the old chain and its jump go, and the outside sees the pod address`,
    { skip, timeout: 120_000 },
    async () => {
      await withScene(async ({ topo, cm, startAgent }) => {
        cm.write(config(FIRST, '1m'));
        const agent = startAgent([`--config=${cm.file}`, `--iptables-mode=${mode}`]);
        await agent.waitForLog('rules applied');
        assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.node4, '198.51.100.0/24 is masqueraded at first');

        natCommand(topo.node, mode, 'ipv4', '-E', CHAIN, 'OLD');
        const mark = agent.mark();
        cm.write(config(SECOND, '1m'));
        await agent.waitForLog('rules applied', { since: mark });
        assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4, 'exempt now: nothing masquerades it any more');
        assert.deepEqual(ourSaveLines(topo.node, mode, 'ipv4'), expectedSaveLines('ipv4', SECOND));
        assert.equal(jumpCount(topo.node, mode, 'ipv4'), 1);
        assert.deepEqual(
          natSave(topo.node, mode).filter((l) => l.includes('OLD')),
          [],
          'the renamed chain and its jump are gone',
        );
        const s = status(topo.node, mode, cm.file);
        assert.equal(s.code, 0, `${s.stdout}${s.stderr}`);
        assert.equal(agent.matching('sync failed', mark).length, 0);
      });
    },
  );

  test(
    `iptables-${mode}: a renamed chain of ours beside the agent's (what an older agent left): status exits 1 and names it; the agent's next sync deletes it; one not all ours makes status exit 1 and every sync fail, untouched`,
    { skip, timeout: 120_000 },
    async () => {
      await withScene(async ({ topo, cm, startAgent }) => {
        cm.write(config(FIRST, '1m'));
        const first = startAgent([`--config=${cm.file}`, `--iptables-mode=${mode}`]);
        await first.waitForLog('rules applied');
        await first.stop();
        // What an agent that did not see the renamed chain made of it: ours again, for the new config,
        // beside the old one, whose jump comes first and still masquerades 198.51.100.0/24.
        natCommand(topo.node, mode, 'ipv4', '-E', CHAIN, 'OLD');
        cm.write(config(SECOND, '1m'));
        const payload = ['*nat', `:${CHAIN} - [0:0]`, ...expectedSaveLines('ipv4', SECOND).filter((l) => l.startsWith(`-A ${CHAIN} `)), JUMP_LINE, 'COMMIT', ''].join('\n');
        nsRun(topo.node, [iptablesBinary(mode, 'ipv4', '-restore'), '-w', '5', '--noflush'], payload);
        assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.node4, 'the old chain decides first');

        const drifted = status(topo.node, mode, cm.file);
        assert.equal(drifted.code, 1, `${drifted.stdout}${drifted.stderr}`);
        assert.match(
          drifted.stdout,
          /\+ # ip-masq-agent: a POSTROUTING rule with our jump's comment leads to nat chain OLD \(\d+ rules, all ours: our chain renamed\); the sync deletes that rule and chain/,
        );

        const second = startAgent([`--config=${cm.file}`, `--iptables-mode=${mode}`]);
        await second.waitForLog('rules applied');
        assert.deepEqual(
          natSave(topo.node, mode).filter((l) => l.includes('OLD')),
          [],
        );
        assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.pod4);
        assert.equal(status(topo.node, mode, cm.file).code, 0);
        await second.stop();

        // Someone's chain behind a rule that carries our jump's comment: not ours to delete.
        natCommand(topo.node, mode, 'ipv4', '-N', 'THEIRS');
        natCommand(topo.node, mode, 'ipv4', '-A', 'THEIRS', '-d', '198.51.100.0/24', '-j', 'MASQUERADE');
        natCommand(topo.node, mode, 'ipv4', '-I', 'POSTROUTING', '1', '-m', 'comment', '--comment', JUMP_LINE.split('"')[1] ?? '', '-j', 'THEIRS');
        const foreign = status(topo.node, mode, cm.file);
        assert.equal(foreign.code, 1, `${foreign.stdout}${foreign.stderr}`);
        assert.match(foreign.stdout, /leads to nat chain THEIRS, not ours \(its rule -A THEIRS -d 198\.51\.100\.0\/24 -j MASQUERADE is not one of ours\)/);
        const third = startAgent([`--config=${cm.file}`, `--iptables-mode=${mode}`]);
        const failed = await third.waitForLog('sync failed');
        assert.match(String(failed.fields['error']), /carries our jump's comment but leads to THEIRS, not IP-MASQ-AGENT/);
        assert.equal(natSave(topo.node, mode).filter((l) => l.includes('THEIRS')).length, 3, 'their chain, rule and jump stay');
        assert.equal(sourceSeenBy(topo.pod, ADDR.outsideDoc4), ADDR.node4, 'their rule decides, and the agent says so');
      });
    },
  );

  test(`iptables-${mode}: cleanup after our chain was renamed: the renamed chain and its jump are named and removed, and nothing masquerades any more`, { skip, timeout: 120_000 }, async () => {
    await withScene(async ({ topo, cm, startAgent }) => {
      cm.write(config(FIRST, '1m'));
      const agent = startAgent([`--config=${cm.file}`, `--iptables-mode=${mode}`]);
      await agent.waitForLog('rules applied');
      await agent.stop();
      natCommand(topo.node, mode, 'ipv4', '-E', CHAIN, 'OLD');
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.node4, 'the renamed chain masquerades');
      const r = runAgentToExit(topo.node, ['cleanup']);
      assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^removed chain OLD \\(ours, renamed\\) and its jump \\(iptables-${mode} IPv4\\)$`, 'm'));
      assert.deepEqual(
        natSave(topo.node, mode).filter((l) => l.includes('OLD') || l.includes(CHAIN)),
        [],
      );
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4), ADDR.pod4, 'nothing of ours masquerades');
    });
  });

  test(
    `iptables-${mode}: a wrapper whose -S POSTROUTING prints nothing: every sync fails, /healthz turns red, no jump is added; fixed, the agent recovers with one jump`,
    { skip, timeout: 120_000 },
    async () => {
      const shim = createShim(iptablesBinary(mode, 'ipv4'), '  case "$*" in *"-S POSTROUTING"*) exit 0 ;; esac');
      try {
        await withScene(async ({ topo, cm, startAgent }) => {
          cm.write(config(FIRST, '1s'));
          const agent = startAgent([`--config=${cm.file}`, `--iptables-mode=${mode}`, ...HTTP_FLAGS], { env: { PATH: shim.path } });
          await agent.waitForLog('rules applied');
          await agent.waitForLog('serving /healthz');
          writeFileSync(shim.marker, '');
          const mark = agent.mark();
          const started = Date.now();
          const errors = (): number => metricSample(httpGet(topo.node, `http://${METRICS}/metrics`).body, 'ip_masq_agent_sync_total{family="ipv4",result="error"}') ?? 0;
          const syncs = (): number => agent.matching((l) => l.msg === 'rules applied' || l.msg.startsWith('rules drifted'), mark).length + errors();
          // Before the fix each sync read "no jump" and added one: wait for as many syncs either way.
          await waitUntil('ten syncs since the listing went empty', () => syncs() >= 10, 60_000);
          const jumps = jumpCount(topo.node, mode, 'ipv4');
          console.log(`# ${mode}: ${syncs()} syncs in ${Date.now() - started} ms with an empty POSTROUTING listing: ${jumps} jump(s) to ${CHAIN}`);
          assert.equal(jumps, 1, 'no jump added');
          const failed = await agent.waitForLog('sync failed', { since: mark });
          assert.match(String(failed.fields['error']), /-S POSTROUTING: printed no "-P POSTROUTING" policy line \(nothing\), so it is no listing of the chain/);
          await waitUntil('/healthz to turn red', () => httpGet(topo.node, `http://${HEALTHZ}/healthz`).status === 503, 30_000);

          rmSync(shim.marker);
          await agent.waitForLog('sync recovered', { since: mark, timeoutMs: 30_000 });
          assert.equal(jumpCount(topo.node, mode, 'ipv4'), 1);
          assert.deepEqual(ourSaveLines(topo.node, mode, 'ipv4'), expectedSaveLines('ipv4', FIRST));
        });
      } finally {
        shim.cleanup();
      }
    },
  );
}
