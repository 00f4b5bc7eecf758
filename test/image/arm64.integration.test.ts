// The arm64 image, built from the same Dockerfile by scripts/image.sh --arch=arm64 and run on this
// amd64 machine through qemu-user-static (binfmt_misc), inside network namespaces the test makes.
// qemu-user translates only some netlink protocols (route, uevent, audit) and none of iptables'
// socket options, so no netfilter tool of any architecture can talk to the kernel under it: the
// arm64 iptables and nft are checked as far as emulation goes (aarch64 binaries whose libraries all
// resolve), and the emulated agent (arm64 node, tini, dash and the bundle) writes its rules with
// the amd64 image's iptables and nft mounted in their place. Skipped, saying why, without podman,
// on a machine that is not amd64, or without an enabled aarch64 binfmt entry.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { arch } from 'node:os';
import { ADDR, canUseNetns, sourceSeenBy } from '../netns/netns.js';
import { createPrivateLock } from '../agent/agent-process.js';
import { expectedSaveLines, ourSaveLines, usePrivateXtablesLock, withScene, type Scene } from '../agent/agent-scene.js';
import { asArray, asString, at, dockerfileGlobalArgs, loadYamlDocuments, readRepoFile } from '../deploy/deploy-files.js';
import { containerPid, elfMachine, ensureImage, hasPodman, IMAGE, IMAGE_ARM64, LIBRARY_CHECK, podman, podmanTry, processesInPidNamespaceOf, runContainer, type Container } from './podman.js';

/** The binfmt_misc entry that qemu-user-static registers for aarch64 ELF files. */
const BINFMT = '/proc/sys/fs/binfmt_misc/qemu-aarch64';

function skipReason(): string | false {
  if (!canUseNetns()) return 'needs root and iproute2 (network namespaces)';
  if (!hasPodman()) return 'podman is not installed (bash scripts/setup.sh --image-tools installs it)';
  if (arch() !== 'x64') return `runs on amd64 machines (this one is ${arch()}); the other image tests run the native image`;
  if (!existsSync(BINFMT) || !readFileSync(BINFMT, 'utf8').startsWith('enabled')) {
    return `no enabled ${BINFMT}: bash scripts/setup.sh --image-tools installs qemu-user-static and registers it`;
  }
  return false;
}
const skip = skipReason();
if (!skip) usePrivateXtablesLock();

const MANIFEST_ARGS = asArray(at(loadYamlDocuments('deploy/ip-masq-agent.yaml')[0], 'spec', 'template', 'spec', 'containers', 0, 'args'), 'args').map((a) => asString(a, 'args[]'));
const EXAMPLE_CONFIG = asString(at(loadYamlDocuments('deploy/examples/configmap.yaml')[0], 'data', 'config'), 'data.config');
const NODE_VERSION = dockerfileGlobalArgs(readRepoFile('Dockerfile')).get('NODE_VERSION') ?? '';
/** e_machine of an AArch64 ELF file. */
const AARCH64 = 183;
/** The programs the agent runs, by their files in the image (the iptables-* names link to the multi-call binaries). */
const PROGRAMS = ['/usr/local/bin/node', '/usr/bin/tini', '/usr/bin/dash', '/usr/sbin/xtables-nft-multi', '/usr/sbin/xtables-legacy-multi', '/usr/sbin/nft'];

/** Where `podman image mount` put each image's files, unmounted after the tests. */
const mounted = new Map<string, string>();
function imageFiles(tag: string): string {
  let dir = mounted.get(tag);
  if (dir === undefined) {
    dir = podman(['image', 'mount', tag]).trim();
    mounted.set(tag, dir);
  }
  return dir;
}

before(() => {
  if (skip) return;
  ensureImage();
  ensureImage('arm64');
});

after(() => {
  for (const tag of mounted.keys()) podmanTry(['image', 'unmount', tag]);
  const left = podmanTry(['ps', '--all', '--format', '{{.Names}}', '--filter', `name=imatest-ctr-${process.pid}-`]).stdout.trim();
  if (left !== '') for (const name of left.split('\n')) podmanTry(['rm', '--force', '--time=0', name]);
});

test('the arm64 image holds aarch64 builds of what the agent runs, and every library they need resolves under emulation', { skip }, () => {
  assert.equal(podman(['image', 'inspect', '--format', '{{.Architecture}}', IMAGE_ARM64]).trim(), 'arm64');
  const files = imageFiles(IMAGE_ARM64);
  for (const program of PROGRAMS) assert.equal(elfMachine(`${files}${program}`), AARCH64, `${program} is an aarch64 binary`);
  // ld.so's list mode loads every library a program needs without running it; qemu runs ld.so.
  const libs = podman(['run', '--rm', '--network=none', '--entrypoint=/bin/sh', IMAGE_ARM64, '-c', LIBRARY_CHECK, 'sh', ...PROGRAMS]);
  assert.doesNotMatch(libs, /not found/, libs);
  assert.match(libs, /^\t?libnftables\.so\.1 => \/\S*aarch64-linux-gnu\/libnftables\.so\.1/m, libs);
  const versions = podman(['run', '--rm', '--network=none', '--entrypoint=/bin/sh', IMAGE_ARM64, '-c', 'node --version; iptables-legacy --version']);
  assert.match(versions, new RegExp(`^v${NODE_VERSION.replace(/\./g, '\\.')}\\niptables v1\\.8\\.\\d+ \\(legacy\\)\\n$`));
  // What qemu-user cannot do, printed for the record (it is why the next test mounts amd64 tools).
  const nft = podmanTry(['run', '--rm', '--network=none', '--cap-add=NET_ADMIN', '--entrypoint=/usr/sbin/nft', IMAGE_ARM64, 'list', 'tables']);
  console.log(
    `# arm64 nft under qemu-user: exit ${nft.code}: ${nft.stderr
      .replace(/^WARNING: image platform.*\n/m, '')
      .trim()
      .slice(0, 200)}`,
  );
});

test("the arm64 image's agent, emulated, writes the rules and masquerades real traffic (with the amd64 image's iptables and nft: qemu-user has no netfilter netlink)", { skip }, async () => {
  const amd64 = imageFiles(IMAGE);
  // The amd64 tools at the arm64 tools' paths, and the amd64 libraries at their own (x86_64) paths,
  // which the arm64 image does not use.
  const volumes = [
    ...['/usr/sbin/xtables-nft-multi', '/usr/sbin/xtables-legacy-multi', '/usr/sbin/nft'].map((p) => `${amd64}${p}:${p}:ro`),
    `${amd64}/usr/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:ro`,
    `${amd64}/usr/lib64:/lib64:ro`,
  ];
  await withScene(async ({ topo, server, cm }: Scene) => {
    cm.write(EXAMPLE_CONFIG);
    const lock = createPrivateLock();
    let c: Container | undefined;
    try {
      const started = Date.now();
      c = runContainer({ netns: topo.node, configDir: cm.dir, lockFile: lock.file, image: IMAGE_ARM64, volumes, args: MANIFEST_ARGS });
      await c.waitForLog('rules applied', { timeoutMs: 180_000 });
      console.log(`# arm64 under qemu-user: container start -> "rules applied": ${Date.now() - started} ms`);
      // The agent is the arm64 node, run by qemu: the kernel started qemu for it (binfmt_misc).
      const init = containerPid(c.name);
      const agent = processesInPidNamespaceOf(init).find((p) => p.ppid === init);
      assert.ok(agent, 'the agent under tini');
      assert.match(readlinkSync(`/proc/${agent.pid}/exe`), /qemu/, 'the agent runs under qemu');
      assert.equal(elfMachine(`/proc/${agent.pid}/root/usr/local/bin/node`), AARCH64);

      assert.deepEqual(ourSaveLines(topo.node, 'nft', 'ipv4'), expectedSaveLines('ipv4', ['10.0.0.0/8']));
      assert.equal(sourceSeenBy(topo.pod, ADDR.outside4, server.port), ADDR.node4, 'masqueraded to the node address');
      assert.equal(sourceSeenBy(topo.pod, ADDR.outsideExempt4, server.port), ADDR.pod4, '10.0.0.0/8 keeps the pod IP');
      const status = podmanTry(['exec', c.name, 'ip-masq-agent', 'status'], 180_000);
      assert.equal(status.code, 0, status.stdout + status.stderr);
      assert.match(status.stdout, /^in sync$/m);
      assert.equal((await c.stop(60_000)).code, 0, `clean exit on SIGTERM${c.stderr()}`);
    } finally {
      await c?.kill();
      c?.remove();
      lock.cleanup();
    }
  });
});
