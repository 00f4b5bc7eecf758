// The built agent while a slow writer rewrites its config in place, with real traffic: a pod sends
// new UDP flows to an exempt destination the whole time, and not one may leave with the node's
// address; the log never says the defaults (or any half-written version) were applied. File mode:
// truncate, 50 ms, write. Directory mode: a 2,000-CIDR file written line by line, the exempt
// range last. Each test builds its own pod/node/outside namespaces and deletes them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, canUseNetns, nsSpawn } from '../netns/netns.js';
import { ourSaveLines, pause, usePrivateXtablesLock, waitUntil, withScene } from './agent-scene.js';

const skip = canUseNetns() ? false : 'needs root and iproute2 (network namespaces)';
if (!skip) usePrivateXtablesLock();

const PORT = 9999;
/** Prints the source address of every datagram it receives, one per line. */
const RECEIVER_JS = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (_m, r) => process.stdout.write(r.address + '\\n'));
s.bind(${PORT}, '0.0.0.0', () => process.stdout.write('ready\\n'));
`;
/** A new flow every 4 ms: a new socket (so a new source port and conntrack entry) per datagram. */
const SENDER_JS = `
const dgram = require('node:dgram');
setInterval(() => {
  const s = dgram.createSocket('udp4');
  s.send('x', ${PORT}, process.argv[1], () => s.close());
}, 4);
`;

/** The source addresses the receiver has seen so far, and whether it listens yet. */
function collect(child: ChildProcess): { readonly seen: string[]; ready(): boolean } {
  const seen: string[] = [];
  let listening = false;
  let rest = '';
  child.stdout?.on('data', (d: Buffer) => {
    const lines = (rest + d.toString('utf8')).split('\n');
    rest = lines.pop() ?? '';
    for (const l of lines)
      if (l === 'ready') listening = true;
      else seen.push(l);
  });
  return { seen, ready: () => listening };
}

const CASES = [
  {
    mode: 'file',
    text: 'nonMasqueradeCIDRs: [10.0.0.0/8, 198.51.100.0/24]\nresyncInterval: 1h\n',
    rules: 3,
    /** The reporter's writer: open with truncate, 50 ms, write. */
    async rewrite(file: string, text: string): Promise<void> {
      const fd = openSync(file, 'w');
      try {
        await pause(50);
        writeSync(fd, text);
      } finally {
        closeSync(fd);
      }
    },
  },
  {
    mode: 'directory',
    text: `resyncInterval: 1h\ncidrLimit: 2100\nnonMasqueradeCIDRs:\n${Array.from({ length: 1999 }, (_, i) => `  - 100.${64 + (i >> 8)}.${i & 255}.0/24\n`).join('')}  - 198.51.100.0/24\n`,
    rules: 2001,
    /** Line by line, with a pause every 50 lines (longer than the watcher's 10 ms debounce). */
    async rewrite(file: string, text: string): Promise<void> {
      const fd = openSync(file, 'w');
      try {
        const lines = text.split(/(?<=\n)/);
        for (let i = 0; i < lines.length; i++) {
          writeSync(fd, lines[i]!);
          if (i % 50 === 49) await pause(15);
        }
      } finally {
        closeSync(fd);
      }
    },
  },
] as const;

for (const c of CASES) {
  test(`--config=<${c.mode}> rewritten in place by a slow writer: no flow to the exempt destination leaves with the node's address; no half-written version is applied`, { skip }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ima-agent-settle-'));
    const file = join(dir, 'ip-masq-agent');
    writeFileSync(file, c.text);
    try {
      await withScene(async ({ topo, startAgent }) => {
        const children: ChildProcess[] = [];
        try {
          const agent = startAgent([`--config=${c.mode === 'file' ? file : dir}`, '--iptables-mode=nft', '--v=2']);
          await agent.waitForLog('rules applied', { timeoutMs: 30_000 });
          const receiver = nsSpawn(topo.outside, [process.execPath, '-e', RECEIVER_JS]);
          children.push(receiver);
          const { seen, ready } = collect(receiver);
          await waitUntil('the receiver to listen', ready);
          children.push(nsSpawn(topo.pod, [process.execPath, '-e', SENDER_JS, ADDR.outsideDoc4]));
          await waitUntil('flows from the pod to arrive', () => seen.length >= 20);
          assert.deepEqual([...new Set(seen)], [ADDR.pod4], 'exempt before the rewrites');

          const mark = agent.mark();
          const from = seen.length;
          for (let i = 0; i < 10; i++) {
            await c.rewrite(file, c.text);
            await pause(700);
          }
          await pause(500);
          const during = seen.slice(from);
          const masqueraded = during.filter((a) => a === ADDR.node4).length;
          const changed = agent.matching((l) => l.msg === 'sync done' && l.fields['reason'] === 'config changed', mark).length;
          const applied = agent.matching((l) => l.msg.startsWith('config applied') || l.msg.startsWith('config rejected'), mark).map((l) => l.raw);
          console.log(
            `# ${c.mode}: ${masqueraded} of ${during.length} new flows left with the node's address; ${applied.length} half-written versions applied or rejected; ${changed} syncs for config changes`,
          );
          assert.ok(during.length >= 100, `flows kept coming (${during.length})`);
          assert.equal(masqueraded, 0, `${masqueraded} of ${during.length} flows to ${ADDR.outsideDoc4} left with the node's address`);
          assert.deepEqual(applied, [], 'the same content rewritten: nothing new to apply, nothing to reject');
          assert.equal(agent.matching('defaults in use', mark).length, 0, 'never the defaults while the file exists');
          assert.ok(changed >= 1, 'the writes were seen (the watcher started syncs)');
          assert.equal(ourSaveLines(topo.node, 'nft', 'ipv4').filter((l) => l.includes('-j RETURN')).length, c.rules, 'the whole config is in force');
        } finally {
          for (const child of children) child.kill('SIGKILL');
        }
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
