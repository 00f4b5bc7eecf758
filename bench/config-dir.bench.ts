// A config directory of many files (issue 17, item 7), not part of the test suite.
//
//   npm run build && sudo node dist/bench/config-dir.bench.js [--files=1000,5000,10000,20000]
//       [--agent=PATH] [--timeout-seconds=60] [--sections=agent,loader] [--text=TEXT]
//
// agent   for each count, a directory of that many empty `ip-masq-x<i>` files (the reported case:
//         0-byte files, so the byte cap does not bound the work; --text= writes TEXT instead, e.g.
//         `{}`, a file that is valid), an agent started on it in a
//         fresh namespace (iptables-nft, HTTP on, private xtables lock): time from spawn to the end
//         of the first sync, and the slowest /healthz answer meanwhile (curl, 2 s cap, every
//         250 ms). --agent= runs another build (e.g. an older bundle) in the same way.
// loader  this build's loader alone on 250, 500 and 1,000 files of `{}` (no wait for the files to
//         settle: none is passed): the first read and a resync's read, per file, to show it is linear.
// Every namespace is created here and deleted again; nothing touches the host's netfilter state.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { canUseNetns, createNamespace, deleteNamespace } from '../test/netns/netns.js';
import { AGENT_MAIN, createPrivateLock, startAgent } from '../test/agent/agent-process.js';
import { ParseCache, loadConfig } from '../src/config/load.js';
import { imageNodeOptions } from './bench-node.js';

const arg = (name: string, fallback: string): string => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const COUNTS = arg('files', '1000,5000,10000,20000').split(',').map(Number);
const AGENT = arg('agent', AGENT_MAIN);
const TIMEOUT_MS = Number(arg('timeout-seconds', '60')) * 1000;
const SECTIONS = new Set(arg('sections', 'agent,loader').split(','));
const TEXT = arg('text', '');
const HEALTHZ = '127.0.0.1:10264';
const run = promisify(execFile);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? Number.NaN;

/** A fresh directory of `n` files named ip-masq-x<i> holding `text`, dated a minute ago (settled). */
function makeDir(n: number, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'ima-bench-dir-'));
  const past = Date.now() / 1000 - 60;
  for (let i = 0; i < n; i++) {
    const file = join(dir, `ip-masq-x${i}`);
    writeFileSync(file, text);
    utimesSync(file, past, past);
  }
  return dir;
}

/** One /healthz probe inside `ns`: seconds curl took, or undefined when nothing listens yet. */
async function probe(ns: string): Promise<{ seconds: number; timedOut: boolean } | undefined> {
  try {
    const { stdout } = await run('ip', ['netns', 'exec', ns, 'curl', '-s', '-o', '/dev/null', '--max-time', '2', '-w', '%{time_total}', `http://${HEALTHZ}/healthz`]);
    return { seconds: Number(stdout), timedOut: false };
  } catch (e) {
    const err = e as { code?: number; stdout?: string };
    // curl 28: timed out (the server took the connection but did not answer); 7: nothing listens yet.
    return err.code === 28 ? { seconds: Number(err.stdout ?? '2'), timedOut: true } : undefined;
  }
}

async function benchAgent(n: number): Promise<void> {
  const dir = makeDir(n, TEXT);
  const ns = createNamespace('cfgdir');
  const lock = createPrivateLock();
  const prefix = AGENT === AGENT_MAIN ? undefined : ['sh', '-c', 'node=$1; shift 2; exec "$node" "$0" "$@"', AGENT];
  const nodeOptions = imageNodeOptions();
  const spawnedAt = Date.now();
  const agent = startAgent(ns, [`--config=${dir}`, '--iptables-mode=nft', '--v=2', `--healthz-bind-address=${HEALTHZ}`, '--metrics-bind-address='], {
    env: nodeOptions ? { ...lock.env, NODE_OPTIONS: nodeOptions } : lock.env,
    ...(prefix ? { prefix } : {}),
  });
  let done = false;
  let slowest = 0;
  let timeouts = 0;
  const probing = (async () => {
    while (!done) {
      const p = await probe(ns);
      if (p) {
        slowest = Math.max(slowest, p.seconds);
        if (p.timedOut) timeouts++;
      }
      await sleep(250);
    }
  })();
  try {
    const first = await agent
      .waitForLog((l) => l.msg === 'sync done', { timeoutMs: TIMEOUT_MS })
      .then(
        (l) => `${((l.time - spawnedAt) / 1000).toFixed(2)} s`,
        () => `none within ${TIMEOUT_MS / 1000} s`,
      );
    done = true;
    await probing;
    const said = agent.matching((l) => l.msg.startsWith('config applied') || l.msg.startsWith('config rejected')).map((l) => l.msg)[0] ?? '';
    console.log(
      `  ${n.toLocaleString('en')} ${TEXT === '' ? 'empty files' : `files of ${JSON.stringify(TEXT)}`}: first sync done ${first}; slowest /healthz ${slowest.toFixed(2)} s, ${timeouts} probes timed out (2 s); config: "${said}"`,
    );
  } finally {
    done = true;
    await agent.kill();
    deleteNamespace(ns);
    lock.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function benchLoader(): Promise<void> {
  const opts = { enableIPv6: false, nomasqAllReservedRanges: false };
  for (const n of [250, 500, 1000]) {
    const dir = makeDir(n, '{}\n');
    try {
      const firsts: number[] = [];
      const resyncs: number[] = [];
      for (let round = 0; round < 5; round++) {
        const cache = new ParseCache();
        let t = performance.now();
        await loadConfig(dir, opts, 'directory', cache);
        firsts.push(performance.now() - t);
        t = performance.now();
        await loadConfig(dir, opts, 'directory', cache);
        resyncs.push(performance.now() - t);
      }
      const per = (ms: number): string => `${((ms * 1000) / n).toFixed(0)} µs/file`;
      console.log(
        `  ${n.toLocaleString('en')} files of {}: first read ${median(firsts).toFixed(1)} ms (${per(median(firsts))}), a resync's read ${median(resyncs).toFixed(1)} ms (${per(median(resyncs))})`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

if (!canUseNetns() && SECTIONS.has('agent')) {
  console.error('needs root and iproute2 (network namespaces) for the agent section; run with --sections=loader without them');
  process.exit(1);
}
if (SECTIONS.has('agent')) {
  console.log(`\n[agent] a config directory of N ${TEXT === '' ? 'empty' : JSON.stringify(TEXT)} ip-masq-x* files: spawn -> first sync done (${AGENT === AGENT_MAIN ? 'this build' : AGENT})`);
  for (const n of COUNTS) await benchAgent(n);
}
if (SECTIONS.has('loader')) {
  console.log("\n[loader] this build's loadConfig on N files of {} (median of 5)");
  await benchLoader();
}
