// A scene for agent integration tests: a fresh pod/node/outside topology, a who-am-I server on
// the outside host, a kubelet-style config dir and a private xtables lock, all removed again
// however the test ends. Also the reference rule lines the tests expect to read back.
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import type { Family } from '../../src/net/cidr.js';
import { createTopology, startPeerServer, type PeerServer, type Topology } from '../netns/netns.js';
import { createConfigMapDir, createPrivateLock, startAgent, type AgentProcess, type ConfigMapDir, type StartAgentOptions } from './agent-process.js';

/** The default chain name, as the reference agent writes it. */
export const CHAIN = 'IP-MASQ-AGENT';

const RETURN_COMMENT = '"ip-masq-agent: local traffic is not subject to MASQUERADE"';
const MASQ_COMMENT = '"ip-masq-agent: outbound traffic is subject to MASQUERADE (must be last in chain)"';

/** The POSTROUTING jump as argv after `-A|-D|-C POSTROUTING` (no shell quoting). */
export const JUMP_SPEC = [
  '-m',
  'comment',
  '--comment',
  `ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom ${CHAIN} chain`,
  '-m',
  'addrtype',
  '!',
  '--dst-type',
  'LOCAL',
  '-j',
  CHAIN,
];

/** The jump as iptables-save prints it. */
export const JUMP_LINE = `-A POSTROUTING -m comment --comment "ip-masq-agent: ensure nat POSTROUTING directs all non-LOCAL destination traffic to our custom ${CHAIN} chain" -m addrtype ! --dst-type LOCAL -j ${CHAIN}`;

/** The RFC 1918 defaults. */
export const DEFAULT_CIDRS = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'] as const;

/**
 * The lines of `iptables-save -t nat` that mention our chain, as the reference agent leaves
 * them: the chain declaration, the jump once, a RETURN per exempt range (link-local first),
 * then MASQUERADE --random-fully.
 */
export function expectedSaveLines(family: Family, cidrs: readonly string[]): string[] {
  const linkLocal = family === 'ipv4' ? '169.254.0.0/16' : 'fe80::/10';
  return [
    `:${CHAIN} - [0:0]`,
    JUMP_LINE,
    ...[linkLocal, ...cidrs].map((c) => `-A ${CHAIN} -d ${c} -m comment --comment ${RETURN_COMMENT} -j RETURN`),
    `-A ${CHAIN} -m comment --comment ${MASQ_COMMENT} -j MASQUERADE --random-fully`,
  ];
}

/** An iptables variant. */
export type Mode = 'nft' | 'legacy';

/** `iptables-nft`, `ip6tables-legacy-save`, ... */
export function iptablesBinary(mode: Mode, family: Family, suffix: '' | '-save' | '-restore' = ''): string {
  return `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${mode}${suffix}`;
}

/** Runs argv in `ns` (never the host namespace) and returns stdout; throws with stderr. */
export function inNs(ns: string, argv: readonly string[]): string {
  if (!ns) throw new Error('inNs needs a namespace');
  try {
    return execFileSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  } catch (e) {
    const err = e as { stderr?: string; status?: number };
    throw new Error(`in netns ${ns}: ${argv.join(' ')} failed (exit ${err.status}): ${err.stderr ?? ''}`, { cause: e });
  }
}

/** GETs a URL with curl inside `ns`; returns the status code and body (throws when curl fails). */
export function httpGet(ns: string, url: string): { status: number; body: string } {
  const out = inNs(ns, ['curl', '-sS', '--max-time', '5', '-w', '\n%{http_code}', url]);
  const cut = out.lastIndexOf('\n');
  return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) };
}

/** The value of one sample line of /metrics (exact name and labels), or undefined. */
export function metricSample(metrics: string, series: string): number | undefined {
  const line = metrics.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** The lines of `<ip|ip6>tables-<mode>-save -t nat` in `ns` that mention our chain. */
export function ourSaveLines(ns: string, mode: Mode, family: Family): string[] {
  return inNs(ns, [iptablesBinary(mode, family, '-save'), '-t', 'nat'])
    .split('\n')
    .filter((l) => l.includes(CHAIN));
}

/** How many POSTROUTING rules jump to our chain. */
export function jumpCount(ns: string, mode: Mode, family: Family): number {
  return inNs(ns, [iptablesBinary(mode, family), '-w', '5', '-t', 'nat', '-S', 'POSTROUTING'])
    .split('\n')
    .filter((l) => l.endsWith(`-j ${CHAIN}`)).length;
}

/** Runs an iptables command against the nat table in `ns`, as another program on the node would. */
export function natCommand(ns: string, mode: Mode, family: Family, ...args: string[]): void {
  inNs(ns, [iptablesBinary(mode, family), '-w', '5', '-t', 'nat', ...args]);
}

/**
 * Gives this test file's own commands and agents a private xtables lock file, so legacy
 * iptables never waits for or holds the machine's /run/xtables.lock. Call once per file.
 */
export function usePrivateXtablesLock(): string {
  const lock = createPrivateLock();
  process.env['XTABLES_LOCKFILE'] = lock.file;
  after(() => lock.cleanup());
  return lock.file;
}

/** What a test body gets. */
export interface Scene {
  readonly topo: Topology;
  readonly server: PeerServer;
  readonly cm: ConfigMapDir;
  /** Starts the agent in the node namespace; it is killed when the scene ends. */
  startAgent(args: readonly string[], opts?: StartAgentOptions): AgentProcess;
}

/** Runs `body` in a fresh scene and always tears it down (agents, server, namespaces, config dir). */
export async function withScene(body: (scene: Scene) => Promise<void>): Promise<void> {
  const topo = createTopology();
  const cm = createConfigMapDir();
  const agents: AgentProcess[] = [];
  let server: PeerServer | undefined;
  try {
    server = await startPeerServer(topo.outside);
    const scene: Scene = {
      topo,
      server,
      cm,
      startAgent: (args, opts) => {
        const a = startAgent(topo.node, args, opts);
        agents.push(a);
        return a;
      },
    };
    await body(scene);
  } finally {
    for (const a of agents) await a.kill();
    server?.stop();
    topo.cleanup();
    cm.cleanup();
  }
}

/** A pause, for letting quiet time pass (never to wait for an outcome: use waitForLog or waitUntil). */
export function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every 20 ms until it returns true; throws after `timeoutMs`. */
export async function waitUntil(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await pause(20);
  }
}

/** Holds the xtables lock file with flock(1) until release() (closing its stdin ends `cat`). */
export async function holdLock(file: string): Promise<{ release: () => Promise<void> }> {
  const holder = spawn('flock', ['--exclusive', file, 'sh', '-c', 'echo locked; exec cat'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => holder.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('flock did not take the lock')), 10_000);
    holder.stdout.once('data', () => {
      clearTimeout(t);
      resolve();
    });
  });
  return {
    release: async () => {
      holder.stdin.end();
      await exited;
    },
  };
}

/** A PATH directory with a wrapper script in front of a real tool. */
export interface Shim {
  readonly dir: string;
  /** While this file exists the wrapper misbehaves; without it, it execs the real tool. */
  readonly marker: string;
  /** `PATH` for the agent: the shim directory first. */
  readonly path: string;
  cleanup(): void;
}

/**
 * A PATH directory whose `name` runs the shell `misbehave` (with `$SHIM_DIR` set to the directory)
 * while `marker` exists, else execs the real /usr/sbin tool, as wrapper scripts in images do.
 */
export function createShim(name: string, misbehave: string): Shim {
  const dir = mkdtempSync(join(tmpdir(), 'ima-agent-shim-'));
  const marker = join(dir, 'fail');
  const shim = join(dir, name);
  writeFileSync(shim, `#!/bin/sh\nSHIM_DIR='${dir}'\nif [ -e '${marker}' ]; then\n${misbehave}\nfi\nexec /usr/sbin/${name} "$@"\n`);
  chmodSync(shim, 0o755);
  return { dir, marker, path: `${dir}:${process.env['PATH'] ?? ''}`, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A PATH directory whose `name` fails (exit 1, message on stderr) while `marker` exists, else runs the real one. */
export function createFailingShim(name: string): Shim {
  return createShim(name, `  echo '${name}: simulated failure (test shim): cannot commit the nat table' >&2\n  exit 1`);
}
