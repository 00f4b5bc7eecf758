// The container image under test, and podman to run it as the DaemonSet does: inside a network
// namespace the test made (never the machine's own), with the DaemonSet's security context.
// Every container, pod and volume made here is removed again however the test ends.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readdirSync, readSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { followAgent, type AgentProcess } from '../agent/agent-process.js';
import { repoRoot } from '../deploy/deploy-files.js';

/** package.json's version, which scripts/image.sh puts in the tag and the version label. */
export const VERSION = (JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version;

/** The tag scripts/image.sh gives the image, as deploy/ip-masq-agent.yaml names it. */
export const IMAGE = `ip-masq-agent:${VERSION}`;

/** The tag scripts/image.sh gives the arm64 image on a machine of another architecture. */
export const IMAGE_ARM64 = `${IMAGE}-arm64`;

/** Prefix of every container and pod the image tests create. */
export const CONTAINER_PREFIX = 'imatest-';

// podman's settings for this kind of machine (runc, cgroupfs, explicit limits), given to every
// podman command here through CONTAINERS_CONF; scripts/image.sh passes the same as flags.
const CONF_DIR = mkdtempSync(join(tmpdir(), 'ima-podman-'));
const CONF = join(CONF_DIR, 'containers.conf');
writeFileSync(
  CONF,
  [
    '[containers]',
    'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
    '[engine]',
    `runtime = "${process.env['PODMAN_RUNTIME'] ?? 'runc'}"`,
    `cgroup_manager = "${process.env['PODMAN_CGROUP_MANAGER'] ?? 'cgroupfs'}"`,
    '',
  ].join('\n'),
);
process.on('exit', () => rmSync(CONF_DIR, { recursive: true, force: true }));
const ENV = { ...process.env, CONTAINERS_CONF: CONF };

/** The environment that gives a podman command this machine's settings (for commands run under nsenter). */
export function podmanConfEnv(): NodeJS.ProcessEnv {
  return ENV;
}

/** Whether podman is installed (the image tests skip, saying so, when it is not). */
export function hasPodman(): boolean {
  return spawnSync('podman', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** A finished podman command. */
export interface PodmanResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `podman ...args` and returns how it ended (never throws). */
export function podmanTry(args: readonly string[], timeoutMs = 120_000): PodmanResult {
  const r = spawnSync('podman', args, { encoding: 'utf8', env: ENV, timeout: timeoutMs });
  return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? String(r.error ?? '') };
}

/** Runs `podman ...args` and returns stdout; throws with stderr on failure. */
export function podman(args: readonly string[], timeoutMs = 120_000): string {
  const r = podmanTry(args, timeoutMs);
  if (r.code !== 0) throw new Error(`podman ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

/** Starts a long-running podman command (e.g. `run` in the foreground, `logs --follow`). */
export function podmanSpawn(args: readonly string[]): ChildProcess {
  return spawn('podman', args, { stdio: ['ignore', 'pipe', 'pipe'], env: ENV });
}

const built = new Map<string, string>();

/**
 * Builds the image with scripts/image.sh (a no-op when the content is unchanged) and returns what
 * the script printed (size and versions). Throws with the script's output when the build fails:
 * with podman installed, a broken image fails the suite instead of skipping it. `arch` builds
 * another architecture's image (tagged IMAGE_ARM64 for arm64).
 */
export function ensureImage(arch?: 'arm64'): string {
  const tag = arch === 'arm64' ? IMAGE_ARM64 : IMAGE;
  const done = built.get(tag);
  if (done !== undefined) return done;
  const started = performance.now();
  const r = spawnSync('bash', [join(repoRoot(), 'scripts/image.sh'), ...(arch ? [`--arch=${arch}`] : []), tag], { encoding: 'utf8', timeout: 30 * 60_000 });
  if (r.status !== 0) {
    throw new Error(`scripts/image.sh failed (exit ${r.status}):\n${(r.stderr ?? '').slice(-4000)}\n${r.stdout ?? ''}${r.error ? String(r.error) : ''}`);
  }
  const out = r.stdout.trim();
  built.set(tag, out);
  console.log(`# ${out} (scripts/image.sh took ${Math.round(performance.now() - started)} ms)`);
  return out;
}

/** A unique container or pod name. */
export function uniqueName(role: string): string {
  return `${CONTAINER_PREFIX}${role}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** How to run the image; the defaults are the DaemonSet's. */
export interface RunOptions {
  /** Network namespace (a name under /run/netns) the container joins as its host network. */
  readonly netns: string;
  /** The kubelet-style ConfigMap directory, mounted read-only at /etc/config. */
  readonly configDir: string;
  /** The namespace's xtables lock file, mounted at /run/xtables.lock. */
  readonly lockFile: string;
  /** Capabilities added after dropping all (default NET_ADMIN, NET_RAW). */
  readonly capAdd?: readonly string[];
  /** Read-only root filesystem (default true). */
  readonly readOnly?: boolean;
  /** Replaces the image's entrypoint, e.g. /ip-masq-agent. */
  readonly entrypoint?: string;
  /** The image to run (default IMAGE). */
  readonly image?: string;
  /** More `--volume` specs (SOURCE:DEST[:OPTIONS]). */
  readonly volumes?: readonly string[];
  /** The container's args (the DaemonSet's `args:`). */
  readonly args: readonly string[];
}

/**
 * `podman run` arguments for the DaemonSet's pod: the namespace as host network, every
 * capability dropped but NET_ADMIN and NET_RAW, not privileged, no privilege escalation, podman's
 * default seccomp profile (RuntimeDefault), a read-only root without podman's extra tmpfs mounts
 * (Kubernetes adds none), a 16 MiB /tmp, the ConfigMap and the xtables lock.
 */
export function daemonSetRunArgs(name: string, o: RunOptions): string[] {
  return [
    'run',
    '--name',
    name,
    '--pull=never',
    `--network=ns:/run/netns/${o.netns}`,
    '--cap-drop=all',
    ...(o.capAdd ?? ['NET_ADMIN', 'NET_RAW']).map((c) => `--cap-add=${c}`),
    '--privileged=false',
    '--security-opt=no-new-privileges',
    ...((o.readOnly ?? true) ? ['--read-only', '--read-only-tmpfs=false'] : []),
    '--tmpfs=/tmp:rw,size=16m,mode=1777',
    `--volume=${o.configDir}:/etc/config:ro`,
    `--volume=${o.lockFile}:/run/xtables.lock`,
    ...(o.volumes ?? []).map((v) => `--volume=${v}`),
    ...(o.entrypoint ? [`--entrypoint=${o.entrypoint}`] : []),
    o.image ?? IMAGE,
    ...o.args,
  ];
}

/** A running container: the agent's process (logs, stop) plus the container's name. */
export interface Container extends AgentProcess {
  readonly name: string;
  /** Removes the container (killing it if still running); safe to call twice. */
  remove(): void;
}

/** Runs the image in the foreground (`podman run`, attached), following the agent's log lines. */
export function runContainer(o: RunOptions): Container {
  const name = uniqueName('ctr');
  const agent = followAgent(podmanSpawn(daemonSetRunArgs(name, o)));
  return { ...agent, name, remove: () => removeContainer(name) };
}

/** Removes a container by name, killing it first; ignores one that is already gone. */
export function removeContainer(name: string): void {
  podmanTry(['rm', '--force', '--time=0', '--ignore', name]);
}

/** The container's main process as the host sees it, to read its capabilities from /proc. */
export function containerPid(name: string): number {
  const pid = Number(podman(['inspect', '--format', '{{.State.Pid}}', name]).trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`container ${name} has no running process (pid ${pid})`);
  return pid;
}

/** The security-relevant lines of /proc/<pid>/status: CapEff, CapBnd, CapPrm, NoNewPrivs, Seccomp. */
export function processSecurity(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
    const m = /^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):\s+(\S+)/.exec(line);
    if (m) out[m[1] ?? ''] = m[2] ?? '';
  }
  return out;
}

/** CAP_NET_ADMIN (12) and CAP_NET_RAW (13), as /proc/<pid>/status prints a capability set. */
export const NET_ADMIN_AND_RAW = '0000000000003000';

/** `podman diff` of a container: one `C|A|D path` per changed path of its root filesystem. */
export function containerDiff(name: string): string[] {
  return podman(['diff', name])
    .split('\n')
    .filter((l) => l.trim() !== '');
}

/** Runs an HTTP GET from inside namespace `ns` (where the agent's loopback endpoints are). */
export function httpGetInNetns(ns: string, url: string): { status: number; body: string } {
  const js = `require('node:http').get(process.argv[1], { timeout: 5000 }, (r) => { let b = ''; r.on('data', (d) => { b += d; }); r.on('end', () => { process.stdout.write(JSON.stringify({ status: r.statusCode, body: b })); }); }).on('error', (e) => { process.stderr.write(String(e)); process.exit(2); });`;
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '-e', js, url], { encoding: 'utf8', timeout: 15_000 });
  if (r.status !== 0) throw new Error(`GET ${url} in netns ${ns} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { status: number; body: string };
}

/**
 * A /bin/sh script that prints, for each program given as an argument, the shared libraries ld.so
 * loads for it without running it (LD_TRACE_LOADED_OBJECTS, what ldd does): a missing one says
 * "not found".
 */
export const LIBRARY_CHECK = 'for p in "$@"; do echo "$p:"; LD_TRACE_LOADED_OBJECTS=1 "$p" || echo "$p: failed"; done';

/** One process as the host's /proc shows it. */
export interface HostProcess {
  readonly pid: number;
  readonly ppid: number;
  /** R, S, Z, ...: Z is a zombie, dead but not reaped by its parent. */
  readonly state: string;
  readonly comm: string;
  readonly cmdline: string;
}

/** A process of the host's /proc, or undefined when it is gone. */
export function hostProcess(pid: number): HostProcess | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split at the last ')'.
    const close = stat.lastIndexOf(')');
    const [state = '', ppid = '0'] = stat.slice(close + 2).split(' ');
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    return { pid, ppid: Number(ppid), state, comm: stat.slice(stat.indexOf('(') + 1, close), cmdline };
  } catch {
    return undefined;
  }
}

/** Every process in the PID namespace of host process `initPid` (a container's PID 1), by host PID. */
export function processesInPidNamespaceOf(initPid: number): HostProcess[] {
  const ns = readlinkSync(`/proc/${initPid}/ns/pid`);
  const out: HostProcess[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/ns/pid`) !== ns) continue;
    } catch {
      continue;
    }
    const p = hostProcess(Number(entry));
    if (p) out.push(p);
  }
  return out;
}

/** The ELF machine of a file (e_machine): 62 is x86-64, 183 is AArch64. */
export function elfMachine(path: string): number {
  const head = Buffer.alloc(20);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  if (head.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${path} is not an ELF file`);
  return head.readUInt16LE(18);
}

/** Runs `node -e script args...` inside a running container (the image has no coreutils). */
export function nodeInContainer(name: string, script: string, ...args: string[]): string {
  return podman(['exec', name, '/usr/local/bin/node', '-e', script, ...args]);
}

/** The names in a directory of a running container, as `ls -A` lists them. */
export function listInContainer(name: string, dir: string): string[] {
  return nodeInContainer(name, 'process.stdout.write(require("fs").readdirSync(process.argv[1]).sort().join("\\n"))', dir)
    .split('\n')
    .filter((l) => l !== '');
}
