// Test hosts in network namespaces this process creates and always deletes.
// Nothing here touches the machine's own network namespace: every link is created inside a
// namespace of ours, and every command that changes state runs under `ip netns exec`.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** Prefix of every namespace the tests create; a leftover sweep looks for it. */
export const NETNS_PREFIX = 'imatest-';

const live = new Set<string>();
let hooked = false;

function deleteNow(name: string): void {
  spawnSync('ip', ['netns', 'delete', name], { stdio: 'ignore' });
  live.delete(name);
}

function hookExit(): void {
  if (hooked) return;
  hooked = true;
  const sweep = (): void => {
    for (const name of [...live]) deleteNow(name);
  };
  process.on('exit', sweep);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      sweep();
      process.exit(130);
    });
  }
}

/** Runs argv inside a namespace and returns stdout; throws with stderr on failure. */
export function nsRun(ns: string, argv: readonly string[], input?: string): string {
  try {
    return execFileSync('ip', ['netns', 'exec', ns, ...argv], {
      encoding: 'utf8',
      input: input ?? '',
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 60_000,
    });
  } catch (e) {
    const err = e as { stderr?: string; status?: number };
    throw new Error(`in netns ${ns}: ${argv.join(' ')} failed (exit ${err.status}): ${err.stderr ?? ''}`, { cause: e });
  }
}

/** Like nsRun but returns the exit code and output instead of throwing. */
export function nsTry(ns: string, argv: readonly string[], input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('ip', ['netns', 'exec', ns, ...argv], { encoding: 'utf8', input: input ?? '', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Starts a long-running process inside a namespace. */
export function nsSpawn(ns: string, argv: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
}

/** Creates an empty namespace (loopback up) that is deleted at process exit if not before. */
export function createNamespace(role: string): string {
  hookExit();
  const name = `${NETNS_PREFIX}${role}-${process.pid}-${randomBytes(3).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name]);
  live.add(name);
  nsRun(name, ['ip', 'link', 'set', 'lo', 'up']);
  return name;
}

/** Deletes a namespace created here. */
export function deleteNamespace(name: string): void {
  deleteNow(name);
}

/** Addresses of the three-host topology. */
export const ADDR = {
  pod4: '10.244.1.2',
  nodePod4: '10.244.1.1',
  node4: '203.0.113.1',
  /** Outside host, reached through the node; not in any default non-masquerade range. */
  outside4: '203.0.113.10',
  /** A second address of the outside host inside 10.244.0.0/16 (exempt under the defaults). */
  outsideExempt4: '10.244.200.10',
  /** A third outside address in 198.51.100.0/24 (exempt only under reserved-ranges or explicit config). */
  outsideDoc4: '198.51.100.10',
  pod6: '2001:db8:244::2',
  nodePod6: '2001:db8:244::1',
  node6: '2001:db8:113::1',
  outside6: '2001:db8:113::10',
  outsideExempt6: '2001:db8:200::10',
} as const;

/** pod -> node -> outside, with the node routing between them. */
export interface Topology {
  readonly pod: string;
  readonly node: string;
  readonly outside: string;
  /** Deletes all three namespaces; safe to call twice. */
  cleanup(): void;
}

/**
 * Builds the pod/node/outside topology. The node forwards; the outside host routes the pod
 * range back through the node, so an unmasqueraded reply still finds the pod.
 */
export function createTopology(): Topology {
  const names: string[] = [];
  const cleanup = (): void => {
    for (const n of names) deleteNow(n);
  };
  try {
    const pod = createNamespace('pod');
    names.push(pod);
    const node = createNamespace('node');
    names.push(node);
    const outside = createNamespace('out');
    names.push(outside);
    const ip = (ns: string, ...args: string[]): string => nsRun(ns, ['ip', ...args]);
    // Links are created inside the node namespace with their peers moved straight into the others.
    ip(node, 'link', 'add', 'to-pod', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod);
    ip(node, 'link', 'add', 'to-out', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', outside);
    for (const [ns, dev] of [
      [node, 'to-pod'],
      [node, 'to-out'],
      [pod, 'eth0'],
      [outside, 'eth0'],
    ] as const) {
      ip(ns, 'link', 'set', dev, 'up');
    }
    ip(pod, 'addr', 'add', `${ADDR.pod4}/24`, 'dev', 'eth0');
    ip(node, 'addr', 'add', `${ADDR.nodePod4}/24`, 'dev', 'to-pod');
    ip(node, 'addr', 'add', `${ADDR.node4}/24`, 'dev', 'to-out');
    ip(outside, 'addr', 'add', `${ADDR.outside4}/24`, 'dev', 'eth0');
    ip(outside, 'addr', 'add', `${ADDR.outsideExempt4}/32`, 'dev', 'eth0');
    ip(outside, 'addr', 'add', `${ADDR.outsideDoc4}/32`, 'dev', 'eth0');
    ip(pod, 'route', 'add', 'default', 'via', ADDR.nodePod4);
    ip(node, 'route', 'add', `${ADDR.outsideExempt4}/32`, 'via', ADDR.outside4);
    ip(node, 'route', 'add', `${ADDR.outsideDoc4}/32`, 'via', ADDR.outside4);
    ip(outside, 'route', 'add', '10.244.1.0/24', 'via', ADDR.node4);
    ip(pod, '-6', 'addr', 'add', `${ADDR.pod6}/64`, 'dev', 'eth0', 'nodad');
    ip(node, '-6', 'addr', 'add', `${ADDR.nodePod6}/64`, 'dev', 'to-pod', 'nodad');
    ip(node, '-6', 'addr', 'add', `${ADDR.node6}/64`, 'dev', 'to-out', 'nodad');
    ip(outside, '-6', 'addr', 'add', `${ADDR.outside6}/64`, 'dev', 'eth0', 'nodad');
    ip(outside, '-6', 'addr', 'add', `${ADDR.outsideExempt6}/128`, 'dev', 'eth0', 'nodad');
    ip(pod, '-6', 'route', 'add', 'default', 'via', ADDR.nodePod6);
    ip(node, '-6', 'route', 'add', `${ADDR.outsideExempt6}/128`, 'via', ADDR.outside6);
    ip(outside, '-6', 'route', 'add', '2001:db8:244::/64', 'via', ADDR.node6);
    // Namespaced sysctls: these change only the node namespace.
    nsRun(node, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
    nsRun(node, ['sysctl', '-q', '-w', 'net.ipv6.conf.all.forwarding=1']);
    return { pod, node, outside, cleanup };
  } catch (e) {
    cleanup();
    throw e;
  }
}

// A TCP echo server answering each connection with the peer address it saw, then closing.
const SERVER_JS = `
const net = require('node:net');
const port = Number(process.argv[1]);
const srv = net.createServer((s) => { s.end(String(s.remoteAddress).replace(/^::ffff:/, '') + '\\n'); });
srv.listen({ port, host: '::', ipv6Only: false }, () => process.stdout.write('ready\\n'));
setTimeout(() => process.exit(0), 600000).unref();
`;

const CLIENT_JS = `
const net = require('node:net');
const [host, port] = [process.argv[1], Number(process.argv[2])];
const s = net.connect({ host, port, timeout: 3000 });
let out = '';
s.on('data', (d) => { out += d; });
s.on('end', () => { process.stdout.write(out); process.exit(0); });
s.on('timeout', () => { process.stderr.write('timeout\\n'); process.exit(2); });
s.on('error', (e) => { process.stderr.write(String(e) + '\\n'); process.exit(3); });
`;

/** A "who am I" server on the outside host; tells each client the source address it saw. */
export interface PeerServer {
  readonly port: number;
  stop(): void;
}

/** Starts the who-am-I server inside `ns`, listening on all addresses of `port`. */
export async function startPeerServer(ns: string, port = 8080): Promise<PeerServer> {
  const child = nsSpawn(ns, [process.execPath, '-e', SERVER_JS, String(port)]);
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('peer server did not start')), 10_000);
    child.stdout?.once('data', () => {
      clearTimeout(t);
      resolve();
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`peer server exited with ${code}`));
    });
  });
  return { port, stop: () => void child.kill('SIGKILL') };
}

/** Connects from `ns` to `dst:port` and returns the source address the server saw. */
export function sourceSeenBy(ns: string, dst: string, port = 8080): string {
  return nsRun(ns, [process.execPath, '-e', CLIENT_JS, dst, String(port)]).trim();
}

/** Whether the test process can create namespaces (root with iproute2). */
export function canUseNetns(): boolean {
  if (process.getuid?.() !== 0) return false;
  const r = spawnSync('ip', ['netns', 'list'], { stdio: 'ignore' });
  return r.status === 0;
}
