// The container image, built from the Dockerfile by scripts/image.sh and run by podman as the
// DaemonSet runs it, inside network namespaces the test makes: the rules it writes (iptables-nft,
// iptables-legacy, nftables), real traffic through the namespaces, a ConfigMap swap, the probes'
// endpoints, `kubectl exec`-style commands, the reference image's paths, a missing NET_ADMIN,
// and a root filesystem it never writes to. Skipped, saying so, where podman is not installed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADDR, canUseNetns, createNamespace, deleteNamespace, nsRun, sourceSeenBy } from '../netns/netns.js';
import { createConfigMapDir, createPrivateLock, type ConfigMapDir, type PrivateLock } from '../agent/agent-process.js';
import { expectedSaveLines, holdLock, ourSaveLines, pause, usePrivateXtablesLock, waitUntil, withScene, type Mode, type Scene } from '../agent/agent-scene.js';
import { asArray, asString, at, loadYamlDocuments, repoRoot } from '../deploy/deploy-files.js';
import {
  containerDiff,
  containerPid,
  ensureImage,
  hasPodman,
  hostProcess,
  httpGetInNetns,
  IMAGE,
  LIBRARY_CHECK,
  listInContainer,
  NET_ADMIN_AND_RAW,
  podman,
  podmanTry,
  processesInPidNamespaceOf,
  processSecurity,
  runContainer,
  VERSION,
  type Container,
  type HostProcess,
  type RunOptions,
} from './podman.js';

const skip = !canUseNetns() ? 'needs root and iproute2 (network namespaces)' : !hasPodman() ? 'podman is not installed (bash scripts/setup.sh --image-tools installs it)' : false;
// The test's own iptables-legacy commands never wait for or hold the machine's lock.
if (!skip) usePrivateXtablesLock();

/** The DaemonSet's container, as deploy/ip-masq-agent.yaml declares it. */
const MANIFEST_CONTAINER = at(loadYamlDocuments('deploy/ip-masq-agent.yaml')[0], 'spec', 'template', 'spec', 'containers', 0);
/** The container's `args:`, passed unchanged. */
const MANIFEST_ARGS = asArray(at(MANIFEST_CONTAINER, 'args'), 'args').map((a) => asString(a, 'args[]'));
/** The example ConfigMap's `config` key, as the agent reads it from /etc/config/ip-masq-agent. */
const EXAMPLE_CONFIG = asString(at(loadYamlDocuments('deploy/examples/configmap.yaml')[0], 'data', 'config'), 'data.config');
/** The example config's non-masquerade CIDRs. */
const EXAMPLE_CIDRS = ['10.0.0.0/8'];
/** The healthz port from the manifest's args (127.0.0.1:10264). */
const HEALTHZ = /--healthz-bind-address=(\S+)/.exec(MANIFEST_ARGS.join(' '))?.[1] ?? '';
const METRICS = /--metrics-bind-address=(\S+)/.exec(MANIFEST_ARGS.join(' '))?.[1] ?? '';

/**
 * What `podman diff` may show for a container that wrote nothing: the mount points podman creates
 * for its own files and for the DaemonSet's volumes, nothing else.
 */
const MOUNT_POINTS = new Set(['C /etc', 'A /etc/config', 'C /run', 'A /run/xtables.lock', 'A /run/.containerenv', 'A /etc/hosts', 'A /etc/resolv.conf', 'A /etc/hostname']);

before(() => {
  if (!skip) ensureImage();
});

/** A container in a scene, removed (with its config dir and lock) when the test ends. */
async function withContainer(
  scene: { netns: string; cm: ConfigMapDir },
  options: Omit<RunOptions, 'netns' | 'configDir' | 'lockFile'>,
  body: (c: Container, lock: PrivateLock) => Promise<void>,
): Promise<void> {
  const lock = createPrivateLock();
  let c: Container | undefined;
  try {
    c = runContainer({ netns: scene.netns, configDir: scene.cm.dir, lockFile: lock.file, ...options });
    await body(c, lock);
  } finally {
    await c?.kill();
    c?.remove();
    lock.cleanup();
  }
}

/** Milliseconds from the container's start (podman's State.StartedAt) to `atMs`. */
function sinceContainerStart(name: string, atMs: number): number {
  const started = podman(['inspect', '--format', '{{.State.StartedAt}}', name]).trim();
  // e.g. "2026-12-01 09:07:01.123456789 +0000 UTC"
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(\.\d+)? ([+-]\d\d)(\d\d)/.exec(started);
  if (!m) throw new Error(`unexpected StartedAt ${JSON.stringify(started)}`);
  const frac = (m[3] ?? '.0').slice(0, 4);
  return atMs - Date.parse(`${m[1]}T${m[2]}${frac}${m[4]}:${m[5]}`);
}

/** The DaemonSet's security context, read from the running container's process. */
function assertDaemonSetSecurity(c: Container): void {
  const sec = processSecurity(containerPid(c.name));
  assert.deepEqual(
    { CapEff: sec['CapEff'], CapPrm: sec['CapPrm'], CapBnd: sec['CapBnd'], NoNewPrivs: sec['NoNewPrivs'], Seccomp: sec['Seccomp'] },
    { CapEff: NET_ADMIN_AND_RAW, CapPrm: NET_ADMIN_AND_RAW, CapBnd: NET_ADMIN_AND_RAW, NoNewPrivs: '1', Seccomp: '2' },
    'only NET_ADMIN and NET_RAW, no privilege escalation, a seccomp filter',
  );
  const inspect = JSON.parse(podman(['inspect', c.name])) as [{ HostConfig: { ReadonlyRootfs: boolean; Privileged: boolean } }];
  assert.equal(inspect[0].HostConfig.Privileged, false);
}

/** `podman exec <container> ip-masq-agent ...`, as `kubectl exec` runs it. */
function execAgent(c: Container, ...args: string[]): { code: number | null; stdout: string; stderr: string } {
  return podmanTry(['exec', c.name, 'ip-masq-agent', ...args]);
}

/**
 * The container's PID 1 reaps orphans, and it is tini with the agent as its one child. The orphan
 * is made as a killed wrapper makes one: a shell that started a tool (node, alive for a second) is
 * killed before it waits for it, so the tool is left to PID 1, which must collect it when it exits.
 * node as PID 1 never does: the tool stays a zombie for the container's life.
 */
async function assertInitReaps(c: Container): Promise<void> {
  const init = containerPid(c.name);
  const wrapper = podmanTry(['exec', c.name, '/bin/sh', '-c', '/usr/local/bin/node -e "setTimeout(() => {}, 1000)" & kill -KILL $$']);
  assert.equal(wrapper.code, 137, `the wrapper shell is killed by SIGKILL: ${wrapper.stderr}`);
  let orphan: HostProcess | undefined;
  await waitUntil(
    'the orphaned tool, a child of PID 1',
    () => {
      orphan = processesInPidNamespaceOf(init).find((p) => p.ppid === init && p.cmdline.includes('setTimeout'));
      return orphan !== undefined;
    },
    20_000,
  );
  const pid = orphan?.pid ?? 0;
  try {
    await waitUntil('the orphan to be reaped', () => hostProcess(pid) === undefined, 20_000);
  } catch {
    assert.fail(`the orphan ${pid} was not reaped by PID 1 (${hostProcess(init)?.comm}): ${JSON.stringify(hostProcess(pid))}`);
  }
  const procs = processesInPidNamespaceOf(init);
  assert.deepEqual(
    procs.filter((p) => p.state === 'Z'),
    [],
    'no zombie in the container',
  );
  assert.equal(hostProcess(init)?.comm, 'tini', 'PID 1 is tini');
  assert.deepEqual(
    procs.filter((p) => p.ppid === init).map((p) => p.cmdline),
    ['/usr/local/bin/node /app/dist/bin/ip-masq-agent.js ' + MANIFEST_ARGS.join(' ')],
    "the agent is tini's one child",
  );
}

/** Changes to the container's root filesystem beyond podman's mount points. */
function rootWrites(c: Container): string[] {
  return containerDiff(c.name).filter((l) => !MOUNT_POINTS.has(l));
}

test('the image holds the agent and what it runs only: no package manager, no perl, no bash, no coreutils, no npm, no dev dependencies, no build tools', { skip }, () => {
  const config = JSON.parse(podman(['image', 'inspect', IMAGE]))[0].Config as { Entrypoint: string[]; Cmd: string[] | null; User?: string };
  assert.deepEqual(config.Entrypoint, ['/usr/bin/tini', '--', '/usr/local/bin/node', '/app/dist/bin/ip-masq-agent.js']);
  assert.equal(config.Cmd ?? null, null, `no CMD arguments: ${JSON.stringify(config.Cmd)}`);
  const lock = JSON.parse(readFileSync(join(repoRoot(), 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  const devOnly = Object.entries(lock.packages)
    .filter(([p, v]) => p !== '' && v.dev === true)
    .map(([p]) => `/app/${p}`);
  assert.ok(
    devOnly.some((p) => p.endsWith('/typescript')),
    'the lockfile names typescript as a dev dependency',
  );
  // dash as /bin/sh runs this; it is in the image for the entry script.
  const script = [
    'for t in npm npx corepack yarn tsc gcc cc make git curl apt apt-get dpkg perl bash python3 ls cat su mount; do command -v "$t" && echo "tool: $t"; done',
    'for t in node tini iptables-nft iptables-nft-save iptables-nft-restore iptables-legacy iptables-legacy-save iptables-legacy-restore ip6tables-nft ip6tables-legacy nft; do command -v "$t" >/dev/null || echo "missing: $t"; done',
    'for p in "$@"; do [ -e "$p" ] && echo "dev dependency: $p"; done',
    '[ -d /usr/local/lib/node_modules ] && echo "global node_modules"',
    'for p in /app/src /app/test /app/tsconfig.json /app/dist/test /etc/ssl/certs /usr/share/man /usr/lib/x86_64-linux-gnu/gconv; do [ -e "$p" ] && echo "not needed: $p"; done',
    'for f in ip-masq-agent.js ip-masq-agent-yaml.js package.json; do [ -f /app/dist/bin/$f ] || echo "missing: /app/dist/bin/$f"; done',
    '[ -e /app/node_modules ] && echo "node_modules: the bundle holds the runtime dependencies"',
    'true',
  ].join('\n');
  const found = podman(['run', '--rm', '--network=none', '--read-only', '--entrypoint=/bin/sh', IMAGE, '-c', script, 'sh', ...devOnly]).trim();
  assert.equal(found, '', `the final stage holds only what the agent runs:\n${found}`);
  // Every library of every program, as the package list in deploy/image/rootfs.sh provides them.
  const programs = ['/usr/local/bin/node', '/usr/bin/tini', '/usr/bin/dash', '/usr/sbin/xtables-nft-multi', '/usr/sbin/xtables-legacy-multi', '/usr/sbin/nft'];
  const libs = podman(['run', '--rm', '--network=none', '--read-only', '--entrypoint=/bin/sh', IMAGE, '-c', LIBRARY_CHECK, 'sh', ...programs]);
  assert.doesNotMatch(libs, /not found|failed/, libs);
  // The target: at most 30 MB beside the node binary (the old Debian-based image: 100 MB).
  const size = Number(podman(['image', 'inspect', '--format', '{{.Size}}', IMAGE]).trim());
  const nodeSize = Number(podman(['run', '--rm', '--network=none', '--entrypoint=/usr/local/bin/node', IMAGE, '-p', 'require("fs").statSync(process.execPath).size']).trim());
  console.log(`# image ${IMAGE}: ${(size / 1e6).toFixed(1)} MB, node ${(nodeSize / 1e6).toFixed(1)} MB, ${((size - nodeSize) / 1e6).toFixed(1)} MB beside node`);
  assert.ok(nodeSize > 50e6, `the node binary's size was read: ${nodeSize}`);
  assert.ok(size - nodeSize <= 30e6, `at most 30 MB beside the node binary: ${size - nodeSize} bytes`);
});

test('the image is labelled with its version, the commit it was built from, and its source', { skip }, () => {
  const labels = JSON.parse(podman(['image', 'inspect', '--format', '{{json .Labels}}', IMAGE])) as Record<string, string>;
  assert.equal(labels['org.opencontainers.image.version'], VERSION);
  const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: repoRoot(), encoding: 'utf8' });
  if (head.status === 0) {
    // A build skipped for unchanged content keeps the revision of the build that made the image.
    assert.match(labels['org.opencontainers.image.revision'] ?? '', /^[0-9a-f]{40}(-dirty)?$/);
  }
  assert.ok((labels['org.opencontainers.image.source'] ?? '') !== '', 'a source label');
  assert.equal(labels['org.opencontainers.image.licenses'], 'Apache-2.0');
});

for (const mode of ['nft', 'legacy'] as const satisfies readonly Mode[]) {
  test(
    `iptables-${mode}: run as the DaemonSet runs it, the agent writes the rules, masquerades real traffic, follows a ConfigMap swap, answers its probes and exec commands, and writes nothing to its root`,
    { skip },
    async () => {
      await withScene(async ({ topo, server }: Scene) => {
        if (mode === 'legacy') {
          // As kubelet marks a node that uses iptables-legacy; the agent must detect it.
          nsRun(topo.node, ['iptables-legacy', '-w', '5', '-t', 'mangle', '-N', 'KUBE-IPTABLES-HINT']);
        }
        const cm = createConfigMapDir();
        try {
          cm.write(EXAMPLE_CONFIG);
          await withContainer({ netns: topo.node, cm }, { args: MANIFEST_ARGS }, async (c, lock) => {
            const applied = await c.waitForLog('rules applied', { timeoutMs: 60_000 });
            console.log(`# iptables-${mode}: container start -> "rules applied": ${sinceContainerStart(c.name, applied.time)} ms`);
            assert.deepEqual(ourSaveLines(topo.node, mode, 'ipv4'), expectedSaveLines('ipv4', EXAMPLE_CIDRS));
            assert.deepEqual(ourSaveLines(topo.node, mode === 'nft' ? 'legacy' : 'nft', 'ipv4'), [], 'nothing in the other iptables');
            assert.equal(sourceSeenBy(topo.pod, ADDR.outside4, server.port), ADDR.node4, 'masqueraded to the node address');
            assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4, server.port), ADDR.pod4, '10.0.0.0/8 keeps the pod IP');

            assertDaemonSetSecurity(c);
            for (const path of ['/healthz', '/readyz']) {
              const r = httpGetInNetns(topo.node, `http://${HEALTHZ}${path}`);
              assert.equal(r.status, 200, `${path}: ${r.body.slice(0, 300)}`);
            }
            const metrics = httpGetInNetns(topo.node, `http://${METRICS}/metrics`);
            assert.equal(metrics.status, 200);
            assert.match(metrics.body, /^# TYPE /m);

            const status = execAgent(c, 'status');
            assert.equal(status.code, 0, status.stdout + status.stderr);
            assert.match(status.stdout, new RegExp(`^backend: iptables-${mode} `, 'm'));
            assert.match(status.stdout, /^in sync$/m);
            const explain = execAgent(c, 'explain', ADDR.outside4, ADDR.outsideExempt4);
            assert.equal(explain.code, 0, explain.stderr);
            assert.match(explain.stdout, new RegExp(`^${ADDR.outside4.replace(/\./g, '\\.')} +masquerade `, 'm'));
            assert.match(explain.stdout, /^10\.244\.200\.10 +keep pod IP +\(matches 10\.0\.0\.0\/8 from \/etc\/config\/ip-masq-agent:2:\d+/m);
            const validate = execAgent(c, 'validate');
            assert.equal(validate.code, 0, validate.stderr);
            assert.match(validate.stdout, /^\/etc\/config\/ip-masq-agent: valid: 1 non-masquerade CIDR/m);

            // A kubelet-style ConfigMap update; the example's resyncInterval is 60 s, so only the
            // watch can explain a change seen sooner. The delay is printed, not asserted.
            const mark = c.mark();
            const swappedAt = cm.write(EXAMPLE_CONFIG.replace('  - 10.0.0.0/8\n', '  - 10.0.0.0/8\n  - 203.0.113.0/24\n'));
            let visibleAt = 0;
            await waitUntil(
              'the swapped config in the rules',
              () => {
                const seen = ourSaveLines(topo.node, mode, 'ipv4').some((l) => l.includes('-d 203.0.113.0/24'));
                if (seen) visibleAt = Date.now();
                return seen;
              },
              20_000,
            );
            console.log(`# iptables-${mode}: ConfigMap swap -> rule visible: ${visibleAt - swappedAt} ms`);
            await c.waitForLog('rules applied', { since: mark });
            assert.deepEqual(ourSaveLines(topo.node, mode, 'ipv4'), expectedSaveLines('ipv4', [...EXAMPLE_CIDRS, '203.0.113.0/24']));
            assert.equal(sourceSeenBy(topo.pod, ADDR.outside4, server.port), ADDR.pod4, 'the swapped config exempts 203.0.113.0/24');

            if (mode === 'legacy') {
              // The lock file mounted at /run/xtables.lock is the one iptables-legacy in the
              // container waits for: while the test holds it, the next swap cannot be written.
              const held = await holdLock(lock.file);
              let released = false;
              try {
                const mark2 = c.mark();
                cm.write(EXAMPLE_CONFIG);
                await c.waitForLog('config applied', { since: mark2 });
                await pause(1_000);
                assert.ok(
                  ourSaveLines(topo.node, mode, 'ipv4').some((l) => l.includes('-d 203.0.113.0/24')),
                  'no write while the lock is held',
                );
                await held.release();
                released = true;
                await waitUntil('the rules once the lock is free', () => !ourSaveLines(topo.node, mode, 'ipv4').some((l) => l.includes('-d 203.0.113.0/24')), 20_000);
              } finally {
                if (!released) await held.release();
              }
              cm.write(EXAMPLE_CONFIG.replace('  - 10.0.0.0/8\n', '  - 10.0.0.0/8\n  - 203.0.113.0/24\n'));
              await waitUntil('the swapped config again', () => ourSaveLines(topo.node, mode, 'ipv4').some((l) => l.includes('-d 203.0.113.0/24')), 20_000);
            }

            assert.deepEqual(rootWrites(c), [], 'the read-only root shows no changes beyond mount points');
            assert.deepEqual(listInContainer(c.name, '/tmp'), [], 'nothing written to /tmp');
            if (mode === 'nft') await assertInitReaps(c);
            assert.deepEqual(
              c.logs.filter((l) => /EROFS|read-only file system/i.test(l.raw)).map((l) => l.raw),
              [],
            );

            const stopped = await c.stop(20_000);
            assert.equal(stopped.code, 0, `clean exit on SIGTERM${c.stderr()}`);
            assert.equal(c.matching('stopping; rules stay in place').length, 1);
            assert.deepEqual(ourSaveLines(topo.node, mode, 'ipv4'), expectedSaveLines('ipv4', [...EXAMPLE_CIDRS, '203.0.113.0/24']), 'rules stay for the next pod');
            assert.equal(c.otherOutput.length, 0, `only JSON lines on stdout: ${c.otherOutput.join('\n')}`);
          });
        } finally {
          cm.cleanup();
        }
      });
    },
  );
}

test('--backend=nftables in the image: its own table, real traffic masqueraded, status in sync', { skip }, async () => {
  await withScene(async ({ topo, server }: Scene) => {
    const cm = createConfigMapDir();
    try {
      cm.write(EXAMPLE_CONFIG);
      await withContainer({ netns: topo.node, cm }, { args: [...MANIFEST_ARGS, '--backend=nftables'] }, async (c) => {
        const applied = await c.waitForLog('rules applied', { timeoutMs: 60_000 });
        console.log(`# nftables: container start -> "rules applied": ${sinceContainerStart(c.name, applied.time)} ms`);
        const table = nsRun(topo.node, ['nft', 'list', 'table', 'inet', 'ip-masq-agent']);
        assert.match(table, /set nonmasq4 \{[^}]*elements = \{ 10\.0\.0\.0\/8 counter packets \d+ bytes \d+, 169\.254\.0\.0\/16 counter packets \d+ bytes \d+ \}/s);
        assert.match(table, /masquerade fully-random/);
        assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), [], 'no iptables chain beside the nftables table');
        assert.equal(sourceSeenBy(topo.pod, ADDR.outside4, server.port), ADDR.node4);
        assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4, server.port), ADDR.pod4);
        const status = execAgent(c, 'status', '--backend=nftables');
        assert.equal(status.code, 0, status.stdout + status.stderr);
        assert.match(status.stdout, /^in sync$/m);
        assert.deepEqual(rootWrites(c), []);
      });
    } finally {
      cm.cleanup();
    }
  });
});

for (const path of ['/ip-masq-agent', '/bin/ip-masq-agent']) {
  test(`the reference image's path ${path} starts the agent under tini as PID 1, which reaps an orphan; the agent writes nothing to a writable root`, { skip }, async () => {
    const ns = createNamespace('img');
    const cm = createConfigMapDir();
    try {
      cm.write(EXAMPLE_CONFIG);
      // A writable root here, so that `podman diff` would show any file the agent wrote.
      await withContainer({ netns: ns, cm }, { entrypoint: path, readOnly: false, args: MANIFEST_ARGS }, async (c) => {
        await c.waitForLog('rules applied', { timeoutMs: 60_000 });
        assert.deepEqual(ourSaveLines(ns, 'nft', 'ipv4'), expectedSaveLines('ipv4', EXAMPLE_CIDRS));
        assert.equal(httpGetInNetns(ns, `http://${HEALTHZ}/readyz`).status, 200);
        assert.deepEqual(rootWrites(c), [], 'no file written outside the mounts');
        await assertInitReaps(c);
        assert.equal((await c.stop(20_000)).code, 0, 'tini passes on SIGTERM and the exit code');
      });
    } finally {
      cm.cleanup();
      deleteNamespace(ns);
    }
  });
}

test('without NET_ADMIN the agent says so (error log, /readyz 503 naming CAP_NET_ADMIN) instead of blaming a busy lock, and writes no rules', { skip }, async () => {
  const ns = createNamespace('img');
  const cm = createConfigMapDir();
  try {
    cm.write(EXAMPLE_CONFIG);
    await withContainer({ netns: ns, cm }, { capAdd: ['NET_RAW'], args: MANIFEST_ARGS }, async (c) => {
      const failed = await c.waitForLog((l) => l.level === 'error' && l.raw.includes('CAP_NET_ADMIN'), { timeoutMs: 60_000 });
      assert.match(failed.raw, /Permission denied|Operation not permitted/);
      assert.doesNotMatch(failed.raw, /lock stayed busy/);
      const ready = httpGetInNetns(ns, `http://${HEALTHZ}/readyz`);
      assert.equal(ready.status, 503);
      assert.match(ready.body, /CAP_NET_ADMIN/);
      assert.deepEqual(ourSaveLines(ns, 'nft', 'ipv4'), [], 'no rules without the capability');
      assert.equal(c.matching('rules applied').length, 0);
    });
  } finally {
    cm.cleanup();
    deleteNamespace(ns);
  }
});

after(() => {
  // A failed test must not leave a container of this file behind.
  const left = podmanTry(['ps', '--all', '--format', '{{.Names}}', '--filter', `name=imatest-ctr-${process.pid}-`]).stdout.trim();
  if (left !== '') {
    for (const name of left.split('\n')) podmanTry(['rm', '--force', '--time=0', name]);
  }
});
