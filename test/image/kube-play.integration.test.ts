// The DaemonSet's pod template itself, run by `podman kube play`: the test turns the template of
// deploy/ip-masq-agent.yaml into a Pod (every field taken from the manifest) and plays it with the
// example ConfigMap (deploy/examples/configmap.yaml). The manifest's hostNetwork: true is kept:
// podman is started inside the test's node namespace (nsenter --net), so the pod's "host network"
// is that namespace, which the test checks before anything else. Every field of the template is
// classified below: checked as running, substituted (and why), or not honoured by podman, and the
// test asserts that podman really does (or does not) honour what the table says.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { stringify } from 'yaml';
import { followAgent, type AgentProcess } from '../agent/agent-process.js';
import { DEFAULT_CIDRS, expectedSaveLines, ourSaveLines, withScene } from '../agent/agent-scene.js';
import { at, loadYamlDocuments, repoRoot, type Yaml } from '../deploy/deploy-files.js';
import { ADDR, canUseNetns, sourceSeenBy } from '../netns/netns.js';
import {
  containerPid,
  ensureImage,
  hasPodman,
  httpGetInNetns,
  IMAGE,
  listInContainer,
  NET_ADMIN_AND_RAW,
  nodeInContainer,
  podman,
  podmanConfEnv,
  podmanSpawn,
  podmanTry,
  processSecurity,
  uniqueName,
} from './podman.js';

const skip = !canUseNetns() ? 'needs root and iproute2 (network namespaces)' : !hasPodman() ? 'podman is not installed (bash scripts/setup.sh --image-tools installs it)' : false;

const DAEMONSET = loadYamlDocuments('deploy/ip-masq-agent.yaml')[0];
const TEMPLATE = at(DAEMONSET, 'spec', 'template') as { metadata: Record<string, Yaml>; spec: Record<string, Yaml> };
const CONFIGMAP_FILE = join(repoRoot(), 'deploy/examples/configmap.yaml');

/** What podman's inspect says about the played container (the fields the table reads). */
interface Inspect {
  Name: string;
  ImageName: string;
  Config: {
    Cmd: string[];
    Env: string[];
    Labels: Record<string, string>;
    StopTimeout: number;
    Healthcheck?: { Test: string[]; Interval: number; Timeout: number; Retries: number };
  };
  HostConfig: { ReadonlyRootfs: boolean; Privileged: boolean; Memory: number; MemoryReservation: number; CpuShares: number; NetworkMode: string };
  Mounts: { Type: string; Source: string; Destination: string; RW: boolean }[];
}

/** What a check sees of the running pod. */
interface Played {
  readonly inspect: Inspect;
  readonly container: string;
  readonly netns: string;
  readonly lockFile: string;
  /** Runs a command in the container. */
  exec(...argv: string[]): string;
}

/** How the test treats one field of the template. */
type Verdict =
  | { readonly kind: 'checked'; readonly check: (p: Played) => void }
  | { readonly kind: 'substituted'; readonly why: string }
  | { readonly kind: 'not honoured'; readonly why: string; readonly honoured?: (p: Played) => boolean };

const container = (): Yaml => at(TEMPLATE, 'spec', 'containers', 0);
const probe = (kind: 'livenessProbe' | 'readinessProbe'): { host: string; port: number; path: string; scheme: string } =>
  at(container(), kind, 'httpGet') as { host: string; port: number; path: string; scheme: string };
const mount = (p: Played, dest: string): Inspect['Mounts'][number] => {
  const m = p.inspect.Mounts.find((x) => x.Destination === dest);
  assert.ok(m, `a mount at ${dest}: ${JSON.stringify(p.inspect.Mounts)}`);
  return m;
};
const MI = 1024 * 1024;

/**
 * Every field of the pod template, by path (list items by their name), and what the test does
 * with it. A field of the manifest missing here fails the test: a new field needs a decision.
 */
const FIELDS: Record<string, Verdict> = {
  'metadata.labels': {
    kind: 'checked',
    check: (p) => {
      for (const [k, v] of Object.entries(at(TEMPLATE, 'metadata', 'labels') as Record<string, string>)) assert.equal(p.inspect.Config.Labels[k], v, `label ${k}`);
    },
  },
  'spec.hostNetwork': {
    kind: 'checked',
    check: (p) => {
      assert.equal(p.inspect.HostConfig.NetworkMode, 'host');
      assert.equal(readlinkSync(`/proc/${containerPid(p.container)}/ns/net`), `net:[${statSync(`/run/netns/${p.netns}`).ino}]`, 'the host network is the test namespace');
    },
  },
  'spec.priorityClassName': { kind: 'not honoured', why: 'no scheduler and no eviction on a single podman host' },
  'spec.automountServiceAccountToken': {
    kind: 'checked',
    check: (p) => assert.equal(p.exec('sh', '-c', '[ -e /var/run/secrets/kubernetes.io ] && echo present || true').trim(), '', 'no service account token'),
  },
  'spec.enableServiceLinks': {
    kind: 'checked',
    check: (p) =>
      assert.deepEqual(
        p.inspect.Config.Env.filter((e) => /_SERVICE_HOST=/.test(e)),
        [],
        'no Service environment variables',
      ),
  },
  'spec.nodeSelector': { kind: 'not honoured', why: 'no scheduler: podman runs the pod on this machine whatever its labels' },
  'spec.tolerations': { kind: 'not honoured', why: 'no taints on a podman host' },
  'spec.securityContext.seccompProfile.type': {
    kind: 'checked',
    check: (p) => assert.equal(processSecurity(containerPid(p.container))['Seccomp'], '2', "a seccomp filter (podman's default profile, its RuntimeDefault)"),
  },
  'spec.terminationGracePeriodSeconds': {
    kind: 'not honoured',
    why: 'podman 4.3 kube play keeps its own 10 s stop timeout',
    honoured: (p) => p.inspect.Config.StopTimeout === at(TEMPLATE, 'spec', 'terminationGracePeriodSeconds'),
  },
  'spec.containers[ip-masq-agent].image': { kind: 'checked', check: (p) => assert.equal(p.inspect.ImageName, `localhost/${IMAGE}`) },
  'spec.containers[ip-masq-agent].imagePullPolicy': { kind: 'checked', check: (p) => assert.equal(p.inspect.ImageName, `localhost/${IMAGE}`, 'IfNotPresent: the local image, no pull') },
  'spec.containers[ip-masq-agent].args': { kind: 'checked', check: (p) => assert.deepEqual(p.inspect.Config.Cmd, at(container(), 'args')) },
  'spec.containers[ip-masq-agent].securityContext.privileged': { kind: 'checked', check: (p) => assert.equal(p.inspect.HostConfig.Privileged, false) },
  'spec.containers[ip-masq-agent].securityContext.allowPrivilegeEscalation': {
    kind: 'checked',
    check: (p) => assert.equal(processSecurity(containerPid(p.container))['NoNewPrivs'], '1'),
  },
  'spec.containers[ip-masq-agent].securityContext.readOnlyRootFilesystem': {
    kind: 'checked',
    check: (p) => {
      assert.equal(p.inspect.HostConfig.ReadonlyRootfs, true);
      assert.match(p.exec('sh', '-c', '{ true > /app/x; } 2>&1 || true'), /Read-only file system/);
    },
  },
  'spec.containers[ip-masq-agent].securityContext.capabilities.drop': {
    kind: 'checked',
    check: (p) => {
      const s = processSecurity(containerPid(p.container));
      assert.deepEqual([s['CapEff'], s['CapPrm'], s['CapBnd']], [NET_ADMIN_AND_RAW, NET_ADMIN_AND_RAW, NET_ADMIN_AND_RAW], 'ALL dropped but NET_ADMIN, NET_RAW');
    },
  },
  'spec.containers[ip-masq-agent].securityContext.capabilities.add': {
    kind: 'checked',
    check: (p) => assert.equal(processSecurity(containerPid(p.container))['CapEff'], NET_ADMIN_AND_RAW, 'NET_ADMIN and NET_RAW effective'),
  },
  'spec.containers[ip-masq-agent].resources.requests.cpu': {
    kind: 'not honoured',
    why: 'a request is for the scheduler; podman sets no CPU shares from it',
    honoured: (p) => p.inspect.HostConfig.CpuShares > 0,
  },
  'spec.containers[ip-masq-agent].resources.requests.memory': {
    kind: 'checked',
    check: (p) => assert.equal(p.inspect.HostConfig.MemoryReservation, 64 * MI, 'requests.memory 64Mi as a memory reservation'),
  },
  'spec.containers[ip-masq-agent].resources.limits.memory': {
    kind: 'checked',
    check: (p) => assert.equal(p.inspect.HostConfig.Memory, 256 * MI, 'limits.memory 256Mi'),
  },
  'spec.containers[ip-masq-agent].livenessProbe': {
    kind: 'not honoured',
    why:
      'podman turns the httpGet probe into a healthcheck that runs `curl` inside the container, which the image does not ' +
      "have (the kubelet sends the GET itself); the test sends it as the kubelet does, from the pod's network namespace, " +
      "and checks podman's healthcheck took period, timeout and failureThreshold from the manifest",
    honoured: (p) => podmanTry(['healthcheck', 'run', p.container]).code === 0,
  },
  'spec.containers[ip-masq-agent].readinessProbe': {
    kind: 'not honoured',
    why: "podman 4.3 ignores readiness probes; the test sends the GET as the kubelet does, from the pod's network namespace",
  },
  'spec.containers[ip-masq-agent].volumeMounts[config]': {
    kind: 'checked',
    check: (p) => {
      assert.equal(mount(p, '/etc/config').RW, false, 'readOnly: true');
      assert.deepEqual(listInContainer(p.container, '/etc/config'), ['ip-masq-agent']);
    },
  },
  'spec.containers[ip-masq-agent].volumeMounts[xtables-lock]': {
    kind: 'checked',
    check: (p) => assert.equal(mount(p, '/run/xtables.lock').Source, p.lockFile),
  },
  'spec.containers[ip-masq-agent].volumeMounts[tmp]': {
    kind: 'checked',
    check: (p) => {
      assert.equal(mount(p, '/tmp').RW, true);
      nodeInContainer(p.container, 'require("fs").writeFileSync("/tmp/probe", "x"); require("fs").unlinkSync("/tmp/probe")');
    },
  },
  'spec.volumes[config].configMap.name': {
    kind: 'checked',
    check: (p) => assert.equal(nodeInContainer(p.container, 'process.stdout.write(require("fs").readFileSync(process.argv[1], "utf8"))', '/etc/config/ip-masq-agent'), EXAMPLE_CONFIG),
  },
  'spec.volumes[config].configMap.items': { kind: 'checked', check: (p) => assert.deepEqual(listInContainer(p.container, '/etc/config'), ['ip-masq-agent'], 'key config as path ip-masq-agent') },
  // Played without the ConfigMap by a test of its own.
  'spec.volumes[config].configMap.optional': { kind: 'checked', check: () => undefined },
  'spec.volumes[xtables-lock].hostPath.path': {
    kind: 'substituted',
    why: "the test namespace's own lock file, never the machine's /run/xtables.lock (type FileOrCreate is kept: podman creates it)",
  },
  'spec.volumes[xtables-lock].hostPath.type': { kind: 'checked', check: (p) => assert.ok(statSync(p.lockFile).isFile(), 'FileOrCreate created the lock file') },
  'spec.volumes[tmp].emptyDir.sizeLimit': {
    kind: 'not honoured',
    why: 'podman makes the emptyDir a named volume on disk without a size limit (the kubelet evicts a pod over its sizeLimit)',
  },
};

const EXAMPLE_CONFIG = String(at(loadYamlDocuments('deploy/examples/configmap.yaml')[0], 'data', 'config'));

/** The leaf paths of the template; items of named lists by their name (which is their identity, not a field). */
function fieldPaths(value: Yaml, path: string): string[] {
  if (Array.isArray(value)) {
    if (value.every((v) => v !== null && typeof v === 'object' && typeof (v as { name?: unknown }).name === 'string')) {
      return value.flatMap((v) => fieldPaths(v, `${path}[${(v as { name: string }).name}]`));
    }
    return [path];
  }
  if (value === null || typeof value !== 'object') return [path];
  return Object.entries(value as Record<string, Yaml>).flatMap(([k, v]) => (k === 'name' && /\]$/.test(path) ? [] : fieldPaths(v, path === '' ? k : `${path}.${k}`)));
}

/** The table's entry for a leaf path: the entry for it or for the nearest enclosing field. */
function verdictOf(path: string): [string, Verdict] | undefined {
  for (let p = path; p !== ''; p = p.replace(/(\.[^.[\]]+|\[[^\]]+\])$/, '')) {
    const v = FIELDS[p];
    if (v) return [p, v];
    if (!/(\.[^.[\]]+|\[[^\]]+\])$/.test(p)) break;
  }
  return undefined;
}

/** The template as a Pod: the same metadata labels and spec, with the substitutions of the table. */
function podFromTemplate(name: string, lockFile: string): Record<string, Yaml> {
  const spec = structuredClone(TEMPLATE.spec) as { volumes: { name: string; hostPath?: { path: string } }[] };
  const lock = spec.volumes.find((v) => v.name === 'xtables-lock');
  assert.ok(lock?.hostPath, 'the manifest mounts the xtables lock from the host');
  lock.hostPath.path = lockFile;
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: structuredClone(TEMPLATE.metadata['labels']) }, spec };
}

let scratch = '';

function removeVolumes(): void {
  for (const v of createdVolumes) podmanTry(['volume', 'rm', '--force', v]);
}

/** A played pod: its container's name and the agent's log lines (podman logs --follow). */
interface PlayedPod {
  readonly podName: string;
  readonly container: string;
  readonly lockFile: string;
  readonly agent: AgentProcess;
}

/**
 * Plays the template as a Pod with podman started inside namespace `netns` (so that hostNetwork:
 * true means that namespace), with or without the example ConfigMap, runs `body`, then removes
 * the pod and the volumes kube play made for it.
 */
async function withPlayedPod(netns: string, configMap: boolean, body: (p: PlayedPod) => Promise<void>): Promise<void> {
  const podName = uniqueName('pod');
  const lockFile = join(scratch, `xtables-${podName}.lock`);
  assert.equal(existsSync(lockFile), false);
  const podFile = join(scratch, `${podName}.yaml`);
  writeFileSync(podFile, stringify(podFromTemplate(podName, lockFile)));
  const inNetns = (args: string[]): ReturnType<typeof spawnSync> =>
    spawnSync('nsenter', [`--net=/run/netns/${netns}`, 'podman', ...args], { encoding: 'utf8', env: podmanConfEnv(), timeout: 120_000 });
  // Before the agent can start: podman's host network under nsenter is the test namespace.
  const probeNs = inNetns(['run', '--rm', '--network=host', '--entrypoint=/usr/local/bin/node', IMAGE, '-p', 'require("fs").readlinkSync("/proc/self/ns/net")']);
  assert.equal(String(probeNs.stdout).trim(), `net:[${statSync(`/run/netns/${netns}`).ino}]`, `a host-network container under nsenter is in the test namespace: ${String(probeNs.stderr)}`);
  let agent: AgentProcess | undefined;
  try {
    const play = inNetns(['kube', 'play', ...(configMap ? ['--configmap', CONFIGMAP_FILE] : []), podFile]);
    assert.equal(play.status, 0, `podman kube play: ${String(play.stderr)}`);
    const container = `${podName}-ip-masq-agent`;
    agent = followAgent(podmanSpawn(['logs', '--follow', container]));
    await body({ podName, container, lockFile, agent });
  } finally {
    await agent?.kill();
    podmanTry(['pod', 'rm', '--force', '--ignore', podName]);
    removeVolumes();
  }
}
const createdVolumes: string[] = [];
let pauseImageBefore = true;

before(() => {
  if (skip) return;
  ensureImage();
  scratch = mkdtempSync(join(tmpdir(), 'ima-kube-'));
  pauseImageBefore = podman(['images', '--quiet', '--filter', 'reference=localhost/podman-pause']).trim() !== '';
  // kube play names volumes after the manifest's (ConfigMap ip-masq-agent, emptyDir tmp) and would
  // reuse one that exists: refuse to run on someone else's, remove only the ones made here.
  for (const v of ['ip-masq-agent', 'tmp']) {
    if (podmanTry(['volume', 'exists', v]).code === 0) throw new Error(`a podman volume named ${v} exists already; kube play would mount it: remove it first`);
    createdVolumes.push(v);
  }
});

after(() => {
  if (skip) return;
  removeVolumes();
  if (!pauseImageBefore) podmanTry(['rmi', '--ignore', 'localhost/podman-pause:4.3.1-0']);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

test('every field of the pod template is checked as running, substituted, or listed as not honoured by podman', { skip: skip ? skip : false }, () => {
  const paths = fieldPaths({ metadata: TEMPLATE.metadata, spec: TEMPLATE.spec }, '');
  const unclassified = paths.filter((p) => !verdictOf(p));
  assert.deepEqual(unclassified, [], 'fields of deploy/ip-masq-agent.yaml the image test has no verdict for');
  const unused = Object.keys(FIELDS).filter((k) => !paths.some((p) => verdictOf(p)?.[0] === k));
  assert.deepEqual(unused, [], 'table entries for fields the manifest no longer has');
});

test("podman kube play runs the DaemonSet's pod template: its security context, volumes, args and probes, with real traffic masqueraded", { skip: skip ? skip : false }, async () => {
  await withScene(async ({ topo, server }) => {
    await withPlayedPod(topo.node, true, async ({ container: ctr, lockFile, agent }) => {
      const inspect = (JSON.parse(podman(['inspect', ctr])) as Inspect[])[0];
      assert.ok(inspect);
      const played: Played = { inspect, container: ctr, netns: topo.node, lockFile, exec: (...argv) => podman(['exec', ctr, ...argv]) };
      (FIELDS['spec.hostNetwork'] as { check: (p: Played) => void }).check(played);

      await agent.waitForLog('rules applied', { timeoutMs: 60_000 });
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', ['10.0.0.0/8']), 'the example ConfigMap is in force');
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4, server.port), ADDR.node4);
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4, server.port), ADDR.pod4);

      // The probes as the kubelet sends them: from the pod's (host) network namespace.
      for (const kind of ['livenessProbe', 'readinessProbe'] as const) {
        const g = probe(kind);
        const r = httpGetInNetns(topo.node, `${g.scheme.toLowerCase()}://${g.host}:${g.port}${g.path}`);
        assert.equal(r.status, 200, `${kind} ${g.path}: ${r.body.slice(0, 300)}`);
      }
      const hc = inspect.Config.Healthcheck;
      const live = at(container(), 'livenessProbe') as { periodSeconds: number; timeoutSeconds: number; failureThreshold: number };
      const g = probe('livenessProbe');
      assert.ok(hc, 'podman made a healthcheck of the livenessProbe');
      assert.ok(hc.Test.join(' ').toLowerCase().includes(`${g.scheme}://${g.host}:${g.port}${g.path}`.toLowerCase()), hc.Test.join(' '));
      assert.deepEqual([hc.Interval / 1e9, hc.Timeout / 1e9, hc.Retries], [live.periodSeconds, live.timeoutSeconds, live.failureThreshold]);

      const notHonoured: string[] = [];
      const substituted: string[] = [];
      for (const [path, v] of Object.entries(FIELDS)) {
        if (v.kind === 'checked') v.check(played);
        else if (v.kind === 'substituted') substituted.push(`${path}: ${v.why}`);
        else {
          if (v.honoured) assert.equal(v.honoured(played), false, `${path} is listed as not honoured, but podman now honours it: update the table`);
          notHonoured.push(`${path}: ${v.why}`);
        }
      }
      console.log(`# substituted for the test:\n${substituted.map((s) => `#   ${s}`).join('\n')}`);
      console.log(
        `# not honoured by podman ${podman(['--version'])
          .trim()
          .replace(/^podman version /, '')} (not checked by running it):\n${notHonoured.map((s) => `#   ${s}`).join('\n')}`,
      );
      console.log(
        "# note: podman copies the ConfigMap's keys into a volume once, without kubelet's ..data layout and updates; " + 'image.integration.test.ts checks live updates with a kubelet-style directory',
      );
      assert.deepEqual(
        substituted.map((s) => s.split(':')[0]),
        ['spec.volumes[xtables-lock].hostPath.path'],
      );
      assert.deepEqual(
        agent.logs.filter((l) => l.level === 'error' || l.level === 'fatal').map((l) => l.raw),
        [],
      );
    });
  });
});

test('configMap optional: true: played without the ConfigMap, the pod starts and the agent says it uses the defaults', { skip: skip ? skip : false }, async () => {
  await withScene(async ({ topo, server }) => {
    await withPlayedPod(topo.node, false, async ({ container: ctr, agent }) => {
      await agent.waitForLog('config applied: defaults in use', { timeoutMs: 60_000 });
      await agent.waitForLog('rules applied');
      // kubelet would mount an empty directory; podman mounts none. Either way no config file.
      assert.equal(nodeInContainer(ctr, 'try { process.stdout.write(require("fs").readdirSync("/etc/config").join(" ")) } catch {}'), '', 'no config file');
      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', [...DEFAULT_CIDRS]));
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4, server.port), ADDR.node4);
      assert.equal(httpGetInNetns(topo.node, `http://${probe('readinessProbe').host}:${probe('readinessProbe').port}/readyz`).status, 200);
    });
  });
});
