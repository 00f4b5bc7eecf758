// The deployment: manifests valid for the Kubernetes API, a DaemonSet that is a valid update of the
// reference's and fixes what operators hit with it, kustomizations, the image, and the docs' paths.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { Volume } from 'kubernetes-models/v1/Volume';
import { AGENT_FLAGS, parseFlags } from '../../src/cli/flags.js';
import {
  asArray,
  asString,
  at,
  listYamlFiles,
  loadYamlDocuments,
  dockerfileGlobalArgs,
  parseDockerfile,
  readRepoFile,
  repoRoot,
  unknownFieldNames,
  validateManifest,
  type DockerStage,
  type Yaml,
} from './deploy-files.js';

const DAEMONSET_FILE = 'deploy/ip-masq-agent.yaml';
const EXAMPLE_CONFIGMAP_FILE = 'deploy/examples/configmap.yaml';
const GUIDE_LABEL = 'node.kubernetes.io/masq-agent-ds-ready';

const isKustomization = (path: string): boolean => /(^|\/)kustomization\.ya?ml$/.test(path);

/** Every path a kustomization refers to: resources, components and patch files. */
function kustomizationRefs(k: Yaml): string[] {
  const list = (key: string): Yaml[] => (at(k, key) === undefined ? [] : asArray(at(k, key), key));
  return [
    ...list('resources').map((r) => asString(r, 'resources[]')),
    ...list('components').map((c) => asString(c, 'components[]')),
    ...list('patches').flatMap((p) => (at(p, 'path') === undefined ? [] : [asString(at(p, 'path'), 'patches[].path')])),
  ];
}

/** Patch files: referenced as patches by some kustomization; they are fragments, not objects. */
function patchFiles(): Set<string> {
  const out = new Set<string>();
  for (const kfile of listYamlFiles('deploy').filter(isKustomization)) {
    const k = loadYamlDocuments(kfile)[0];
    const patches = at(k, 'patches') === undefined ? [] : asArray(at(k, 'patches'), 'patches');
    for (const p of patches) {
      if (at(p, 'path') !== undefined) out.add(normalize(join(dirname(kfile), asString(at(p, 'path'), 'path'))));
    }
  }
  return out;
}

/** Every Kubernetes object in deploy/, with the file it came from. */
function allManifests(): { file: string; obj: Yaml }[] {
  const patches = patchFiles();
  // deploy/monitoring/ holds Prometheus files and a PrometheusRule, a custom resource the API
  // schema here does not know: test/deploy/monitoring.test.ts checks them.
  return listYamlFiles('deploy')
    .filter((f) => !isKustomization(f) && !patches.has(f) && !f.startsWith('deploy/monitoring/'))
    .flatMap((file) => loadYamlDocuments(file).map((obj) => ({ file, obj })));
}

function loadDaemonSet(): Yaml {
  const docs = loadYamlDocuments(DAEMONSET_FILE);
  assert.equal(docs.length, 1, `${DAEMONSET_FILE} holds exactly the DaemonSet`);
  return docs[0];
}

/** A deep copy of `obj` with the value at `path` replaced (or deleted, for undefined). */
function withValue(obj: Yaml, path: (string | number)[], value: Yaml): Yaml {
  const copy = structuredClone(obj);
  const parent = at(copy, ...path.slice(0, -1)) as Record<string | number, Yaml>;
  const last = path[path.length - 1] as string | number;
  if (value === undefined) Reflect.deleteProperty(parent, last);
  else parent[last] = value;
  return copy;
}

const podSpec = (ds: Yaml): Yaml => at(ds, 'spec', 'template', 'spec');
const container = (ds: Yaml): Yaml => {
  const containers = asArray(at(podSpec(ds), 'containers'), 'containers');
  assert.equal(containers.length, 1, 'one container');
  return containers[0];
};
const volumeNamed = (ds: Yaml, name: string): Yaml => asArray(at(podSpec(ds), 'volumes'), 'volumes').find((v) => at(v, 'name') === name);
const mountAt = (ds: Yaml, path: string): Yaml => asArray(at(container(ds), 'volumeMounts'), 'volumeMounts').find((m) => at(m, 'mountPath') === path);
const agentFlags = (ds: Yaml): ReadonlyMap<string, string> => parseFlags(asArray(at(container(ds), 'args') ?? [], 'args').map((a) => asString(a, 'arg'))).values;
const flagDefault = (name: string): string => {
  const spec = AGENT_FLAGS.find((f) => f.name === name);
  assert.ok(spec, `the agent has a --${name} flag`);
  return spec.default;
};

describe('deploy/: every manifest is a valid Kubernetes object', () => {
  it('parses every YAML file and validates every object against the Kubernetes API schema', () => {
    const manifests = allManifests();
    const kinds = manifests.map(({ obj }) => `${String(at(obj, 'kind'))}/${String(at(obj, 'metadata', 'name'))}`);
    assert.ok(kinds.includes('DaemonSet/ip-masq-agent'), `found ${kinds.join(', ')}`);
    assert.ok(kinds.includes('ConfigMap/ip-masq-agent'), `found ${kinds.join(', ')}`);
    for (const { file, obj } of manifests) assert.doesNotThrow(() => validateManifest(obj, file), file);
  });

  it('the validation really rejects broken objects (so the test above can fail)', () => {
    const spec = ['spec', 'template', 'spec'];
    const ctr = [...spec, 'containers', 0];
    const broken: [string, (string | number)[], Yaml][] = [
      ['hostNetwork of the wrong type', [...spec, 'hostNetwork'], 'yes'],
      ['hostPath type misspelt', [...spec, 'volumes', 1, 'hostPath', 'type'], 'FileOrCreat'],
      ['selector missing', ['spec', 'selector'], undefined],
      ['memory quantity malformed', [...ctr, 'resources', 'limits', 'memory'], '128 MB'],
      ['field name misspelt', [...ctr, 'securityContext', 'readOnlyRootFileSystem'], true],
    ];
    for (const [what, path, value] of broken) {
      assert.throws(() => validateManifest(withValue(loadDaemonSet(), path, value), 'broken copy'), Error, what);
    }
    const cm = withValue(loadYamlDocuments(EXAMPLE_CONFIGMAP_FILE)[0], ['data', 'config'], 42);
    assert.throws(() => validateManifest(cm, 'broken ConfigMap'), /must be string/);
    assert.throws(() => validateManifest({ apiVersion: 'v1', kind: 'Pod' }, 'x'), /no schema known/);
  });
});

describe('DaemonSet deploy/ip-masq-agent.yaml', () => {
  const ds = loadDaemonSet();

  it('is the reference DaemonSet: ip-masq-agent in kube-system with the immutable selector k8s-app=ip-masq-agent', () => {
    assert.equal(at(ds, 'kind'), 'DaemonSet');
    assert.equal(at(ds, 'metadata', 'name'), 'ip-masq-agent');
    assert.equal(at(ds, 'metadata', 'namespace'), 'kube-system');
    assert.deepEqual(at(ds, 'spec', 'selector'), { matchLabels: { 'k8s-app': 'ip-masq-agent' } });
    const labels = at(ds, 'spec', 'template', 'metadata', 'labels');
    assert.equal(at(labels, 'k8s-app'), 'ip-masq-agent');
    assert.equal(at(labels, 'app.kubernetes.io/name'), 'ip-masq-agent');
  });

  it('runs in the host network namespace, as a node-critical pod', () => {
    assert.equal(at(podSpec(ds), 'hostNetwork'), true);
    assert.equal(at(podSpec(ds), 'priorityClassName'), 'system-node-critical');
  });

  it("runs only on nodes with the guide's label, and on those whatever their taints", () => {
    assert.equal(at(podSpec(ds), 'nodeSelector', GUIDE_LABEL), 'true');
    const tolerations = asArray(at(podSpec(ds), 'tolerations'), 'tolerations');
    assert.ok(
      tolerations.some((t) => at(t, 'operator') === 'Exists' && at(t, 'key') === undefined && at(t, 'effect') === undefined),
      'a toleration with operator Exists and no key or effect tolerates every taint',
    );
  });

  it('mounts the optional ConfigMap ip-masq-agent, key config, where the agent reads its config by default', () => {
    const volume = volumeNamed(ds, 'config');
    assert.deepEqual(at(volume, 'configMap'), {
      name: 'ip-masq-agent',
      optional: true,
      items: [{ key: 'config', path: 'ip-masq-agent' }],
    });
    const mount = mountAt(ds, '/etc/config');
    assert.equal(at(mount, 'name'), 'config');
    const configFile = `${String(at(mount, 'mountPath'))}/${String(at(volume, 'configMap', 'items', 0, 'path'))}`;
    assert.equal(agentFlags(ds).get('config'), configFile, 'the agent reads the mounted file');
    assert.equal(flagDefault('config'), '/etc/config/ip-masq-agent', "the reference's path");
  });

  it("shares the host's /run/xtables.lock with kube-proxy (created if missing)", () => {
    const mount = mountAt(ds, '/run/xtables.lock');
    assert.ok(mount, 'mounted at /run/xtables.lock');
    assert.notEqual(at(mount, 'readOnly'), true, 'iptables-legacy takes the lock with the file open for writing');
    assert.deepEqual(at(volumeNamed(ds, String(at(mount, 'name'))), 'hostPath'), {
      path: '/run/xtables.lock',
      type: 'FileOrCreate',
    });
  });

  it('has NET_ADMIN and NET_RAW only: not privileged, no escalation, read-only root, no API token', () => {
    const sc = at(container(ds), 'securityContext');
    assert.deepEqual(at(sc, 'capabilities'), { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] });
    assert.equal(at(sc, 'privileged'), false);
    assert.equal(at(sc, 'allowPrivilegeEscalation'), false);
    assert.equal(at(sc, 'readOnlyRootFilesystem'), true);
    assert.equal(at(podSpec(ds), 'automountServiceAccountToken'), false);
    for (const hostNs of ['hostPID', 'hostIPC']) assert.notEqual(at(podSpec(ds), hostNs), true, hostNs);
    const hostPaths = asArray(at(podSpec(ds), 'volumes'), 'volumes').filter((v) => at(v, 'hostPath') !== undefined);
    assert.deepEqual(
      hostPaths.map((v) => at(v, 'hostPath', 'path')),
      ['/run/xtables.lock'],
      'no other host path',
    );
  });

  it('gives the agent flags it understands, and keeps its endpoints on the node loopback', () => {
    const flags = agentFlags(ds);
    for (const name of ['healthz-bind-address', 'metrics-bind-address']) {
      assert.match(flags.get(name) ?? '', /^127\.0\.0\.1:\d+$/, `--${name} stays on loopback`);
    }
    assert.equal(flags.get('masq-chain'), flagDefault('masq-chain'), "the reference's chain IP-MASQ-AGENT");
    assert.equal(flags.get('backend'), 'iptables', 'drop-in backend by default');
  });

  it('probes /healthz (liveness) and /readyz (readiness) on 127.0.0.1 at the port the agent listens on', () => {
    const healthz = agentFlags(ds).get('healthz-bind-address') ?? '';
    const [host, port] = [healthz.slice(0, healthz.lastIndexOf(':')), Number(healthz.slice(healthz.lastIndexOf(':') + 1))];
    for (const [probe, path] of [
      ['livenessProbe', '/healthz'],
      ['readinessProbe', '/readyz'],
    ] as const) {
      const get = at(container(ds), probe, 'httpGet');
      assert.equal(at(get, 'host'), host, `${probe} targets the loopback the endpoint binds to (kubelet is on the host)`);
      assert.equal(at(get, 'port'), port, `${probe} port`);
      assert.equal(at(get, 'path'), path, `${probe} path`);
    }
    const liveness = at(container(ds), 'livenessProbe');
    const patience = Number(at(liveness, 'periodSeconds') ?? 10) * Number(at(liveness, 'failureThreshold') ?? 3);
    assert.ok(patience >= 30, `liveness restarts only after ${patience}s of failures, longer than a held xtables lock`);
  });

  it('requests CPU and memory and limits memory, requests within limits', () => {
    const resources = at(container(ds), 'resources');
    assert.ok(at(resources, 'requests', 'cpu'), 'cpu request');
    const toBytes = (q: Yaml): number => {
      const m = /^(\d+)(Ki|Mi|Gi)$/.exec(asString(q, 'memory quantity'));
      assert.ok(m, `memory as Ki/Mi/Gi: ${String(q)}`);
      return Number(m[1]) * { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 }[m[2] as 'Ki' | 'Mi' | 'Gi'];
    };
    assert.ok(toBytes(at(resources, 'requests', 'memory')) <= toBytes(at(resources, 'limits', 'memory')));
  });

  it('rolls out with RollingUpdate and a bounded maxUnavailable', () => {
    assert.equal(at(ds, 'spec', 'updateStrategy', 'type'), 'RollingUpdate');
    const maxUnavailable = at(ds, 'spec', 'updateStrategy', 'rollingUpdate', 'maxUnavailable');
    assert.ok(typeof maxUnavailable === 'number' || /^\d+%$/.test(String(maxUnavailable)), String(maxUnavailable));
  });

  it('runs the image of the version in package.json', () => {
    const version = (JSON.parse(readRepoFile('package.json')) as { version: string }).version;
    assert.equal(at(container(ds), 'image'), `ip-masq-agent:${version}`);
  });
});

describe("example ConfigMap (the user guide's)", () => {
  const docs = loadYamlDocuments(EXAMPLE_CONFIGMAP_FILE);

  it('is ConfigMap ip-masq-agent in kube-system with key config holding a YAML agent config', () => {
    assert.equal(docs.length, 1);
    const cm = docs[0];
    assert.equal(at(cm, 'kind'), 'ConfigMap');
    assert.equal(at(cm, 'metadata', 'name'), 'ip-masq-agent');
    assert.equal(at(cm, 'metadata', 'namespace'), 'kube-system');
    assert.deepEqual(Object.keys(at(cm, 'data') as object), ['config'], 'the key the DaemonSet maps to the file');
    const config = parseYaml(asString(at(cm, 'data', 'config'), 'data.config')) as Yaml;
    const cidrs = asArray(at(config, 'nonMasqueradeCIDRs'), 'nonMasqueradeCIDRs');
    assert.ok(cidrs.length > 0 && cidrs.every((c) => typeof c === 'string' && /^[\d.:a-f]+\/\d+$/.test(c)), JSON.stringify(cidrs));
  });

  it('is what `kubectl create configmap ip-masq-agent --from-file=config` makes of deploy/examples/config', () => {
    assert.equal(at(docs[0], 'data', 'config'), readRepoFile('deploy/examples/config'));
  });

  it('is not applied by `kubectl apply -f deploy/ip-masq-agent.yaml` or `-k deploy/`, so it never overwrites a real one', () => {
    const applied = [...loadYamlDocuments(DAEMONSET_FILE), ...kustomizedBaseObjects()];
    assert.ok(!applied.some((o) => at(o, 'kind') === 'ConfigMap'), 'no ConfigMap in the base');
  });
});

/** The objects the base kustomization lists directly (files only: it has no nested bases). */
function kustomizedBaseObjects(): Yaml[] {
  const k = loadYamlDocuments('deploy/kustomization.yaml')[0];
  return kustomizationRefs(k).flatMap((ref) => loadYamlDocuments(join('deploy', ref)));
}

describe('kustomizations', () => {
  const kfiles = listYamlFiles('deploy').filter(isKustomization);

  it('deploy/kustomization.yaml makes `kubectl apply -k deploy/` apply the DaemonSet', () => {
    assert.ok(kfiles.includes('deploy/kustomization.yaml'));
    const k = loadYamlDocuments('deploy/kustomization.yaml')[0];
    assert.equal(at(k, 'apiVersion'), 'kustomize.config.k8s.io/v1beta1');
    assert.equal(at(k, 'kind'), 'Kustomization');
    assert.deepEqual(kustomizedBaseObjects(), loadYamlDocuments(DAEMONSET_FILE));
  });

  it('every file a kustomization lists exists, and every YAML file beside it is listed', () => {
    for (const kfile of kfiles) {
      const dir = dirname(kfile);
      const refs = kustomizationRefs(loadYamlDocuments(kfile)[0]).map((r) => normalize(join(dir, r)));
      for (const ref of refs) {
        const abs = join(repoRoot(), ref);
        assert.ok(existsSync(abs), `${kfile} lists ${ref}, which does not exist`);
        if (statSync(abs).isDirectory()) {
          assert.ok(existsSync(join(abs, 'kustomization.yaml')), `${ref} is a kustomization directory`);
        }
      }
      const beside = listYamlFiles(dir).filter((f) => dirname(f) === dir && f !== kfile);
      for (const f of beside) assert.ok(refs.includes(f), `${kfile} does not list ${f}`);
    }
  });

  describe('deploy/examples/multi-source (projected platform + user ConfigMaps)', () => {
    const dir = 'deploy/examples/multi-source';
    const component = loadYamlDocuments(`${dir}/kustomization.yaml`)[0];
    const smp = loadYamlDocuments(`${dir}/projected-config.yaml`)[0];
    const jsonPatch = loadYamlDocuments(`${dir}/config-directory-arg.yaml`)[0];

    it('is a kustomize Component adding the platform ConfigMap ip-masq-platform (key config)', () => {
      assert.equal(at(component, 'kind'), 'Component');
      const platform = loadYamlDocuments(`${dir}/ip-masq-platform.yaml`)[0];
      assert.equal(at(platform, 'metadata', 'name'), 'ip-masq-platform');
      assert.equal(at(platform, 'metadata', 'namespace'), 'kube-system');
      const config = parseYaml(asString(at(platform, 'data', 'config'), 'data.config')) as Yaml;
      assert.ok(asArray(at(config, 'nonMasqueradeCIDRs'), 'nonMasqueradeCIDRs').length > 0);
    });

    it('replaces the config volume with a valid projected volume of both ConfigMaps, each optional', () => {
      assert.equal(at(smp, 'metadata', 'name'), 'ip-masq-agent');
      const volumes = asArray(at(smp, 'spec', 'template', 'spec', 'volumes'), 'volumes');
      assert.ok(
        volumes.some((v) => at(v, 'name') === 'config' && at(v, '$patch') === 'delete'),
        'the single-ConfigMap volume is removed',
      );
      const projected = volumes.find((v) => at(v, 'projected') !== undefined);
      assert.doesNotThrow(() => new Volume(projected as ConstructorParameters<typeof Volume>[0]).validate());
      assert.deepEqual(unknownFieldNames(projected), []);
      const sources = asArray(at(projected, 'projected', 'sources'), 'sources').map((s) => at(s, 'configMap'));
      assert.deepEqual(sources, [
        { name: 'ip-masq-platform', optional: true, items: [{ key: 'config', path: 'ip-masq-platform' }] },
        { name: 'ip-masq-agent', optional: true, items: [{ key: 'config', path: 'ip-masq-agent' }] },
      ]);
      const mounts = asArray(at(smp, 'spec', 'template', 'spec', 'containers', 0, 'volumeMounts'), 'volumeMounts');
      assert.deepEqual(
        mounts.map((m) => [at(m, 'mountPath'), at(m, 'name')]),
        [['/etc/config', at(projected, 'name')]],
        '/etc/config now shows the projected volume',
      );
    });

    it('points --config at the directory, so the agent merges every ip-masq* file there', () => {
      const ops = asArray(jsonPatch, 'JSON patch');
      assert.deepEqual(ops, [{ op: 'add', path: '/spec/template/spec/containers/0/args/-', value: '--config=/etc/config' }]);
      const args = [...asArray(at(container(loadDaemonSet()), 'args'), 'args'), at(ops[0], 'value')].map((a) => asString(a, 'arg'));
      assert.equal(parseFlags(args).values.get('config'), '/etc/config');
      const files = asArray(at(smp, 'spec', 'template', 'spec', 'volumes'), 'volumes')
        .flatMap((v) => asArray(at(v, 'projected', 'sources') ?? [], 'sources'))
        .flatMap((s) => asArray(at(s, 'configMap', 'items'), 'items').map((i) => asString(at(i, 'path'), 'path')));
      assert.ok(
        files.every((f) => f === 'ip-masq-agent' || f.startsWith('ip-masq')),
        `${files.join(', ')} are all read`,
      );
    });
  });
});

describe('Dockerfile', () => {
  const dockerfile = readRepoFile('Dockerfile');
  const stages = parseDockerfile(dockerfile);
  const runtime = stages[stages.length - 1] as DockerStage;
  const pkg = JSON.parse(readRepoFile('package.json')) as { bin: Record<string, string> };
  const instructions = (stage: DockerStage, keyword: string): string[] => stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);
  const nodeVersion = dockerfileGlobalArgs(dockerfile).get('NODE_VERSION') ?? '';

  it('builds on the build platform from one Debian (bookworm) Node image of ARG NODE_VERSION, and ends in a stage from scratch', () => {
    assert.match(nodeVersion, /^\d+\.\d+\.\d+$/, 'ARG NODE_VERSION names a full version');
    const builders = stages.slice(0, -1);
    assert.ok(builders.length >= 2, 'a build stage and a root filesystem stage');
    for (const stage of builders) {
      assert.match(stage.from, new RegExp(`^node:${nodeVersion.replace(/\./g, '\\.')}-bookworm-slim(@sha256:[0-9a-f]{64})?$`), stage.from);
      // Every command runs on the build platform: another architecture's image needs no emulation.
      assert.equal(stage.platform, '$BUILDPLATFORM', `${stage.name ?? stage.from} runs on the build platform`);
    }
    assert.equal(runtime.from, 'scratch');
    assert.deepEqual(instructions(runtime, 'RUN'), [], 'nothing runs in the final stage');
  });

  it('builds with npm ci and npm run build, and ships the bundle alone: no node_modules, no dev dependencies', () => {
    const allRuns = stages.flatMap((s) => instructions(s, 'RUN'));
    assert.ok(allRuns.some((r) => /npm ci\b/.test(r)) && allRuns.some((r) => /npm run build/.test(r)), 'a build stage');
    const copies = instructions(runtime, 'COPY');
    assert.deepEqual(
      copies.filter((c) => /node_modules/.test(c)),
      [],
      'the bundle holds the runtime dependencies',
    );
    const bundle = copies.find((c) => /dist\/bin\/ip-masq-agent\.js \.\/dist\/bin\/ip-masq-agent\.js$/.test(c));
    assert.ok(bundle && /^--from=\S+ /.test(bundle), `the bundle copied from the build stage: ${copies.join(' | ')}`);
    // The bundle is CommonJS in a "type": "module" package: without dist/bin/package.json beside it,
    // node would read it as an ES module and fail at its first require().
    // And the yaml library, a file of its own beside the bundle, which requires it when a config needs it.
    for (const file of ['package.json', 'ip-masq-agent-yaml.js']) {
      const copy = copies.find((c) => c.endsWith(`dist/bin/${file} ./dist/bin/${file}`));
      assert.ok(copy && /^--from=\S+ /.test(copy), `dist/bin/${file} copied from the build stage: ${copies.join(' | ')}`);
    }
    // The bundle is written by the build script the image runs (npm run build).
    const build = (JSON.parse(readRepoFile('package.json')) as { scripts: { build: string } }).scripts.build;
    assert.match(build, /node scripts\/bundle\.mjs/);
    assert.ok(readRepoFile('.dockerignore').split('\n').includes('!scripts/bundle.mjs'), 'the bundle script is in the build context');
  });

  it('assembles the final root filesystem from Debian packages for the target architecture: iptables, nftables, tini, dash', () => {
    const rootfs = stages.find((st) => instructions(st, 'RUN').some((r) => r.includes('rootfs.sh')));
    assert.ok(rootfs, 'a stage runs deploy/image/rootfs.sh');
    const run = instructions(rootfs, 'RUN').find((r) => r.includes('rootfs.sh')) ?? '';
    assert.match(run, /rootfs\.sh "\$TARGETARCH" "\$NODE_VERSION" \/rootfs/);
    assert.ok(instructions(runtime, 'COPY').includes(`--from=${rootfs.name ?? ''} /rootfs/ /`), 'the final stage starts from that root filesystem');
    const script = readRepoFile('deploy/image/rootfs.sh');
    const list = /^packages=\(\n([\s\S]*?)\n\)$/m.exec(script)?.[1] ?? '';
    const packages = list
      .split('\n')
      .filter((l) => !/^\s*#/.test(l))
      .join(' ')
      .trim()
      .split(/\s+/);
    for (const name of ['iptables', 'nftables', 'tini', 'dash', 'libc6', 'libstdc++6']) assert.ok(packages.includes(name), `${name} in rootfs.sh's packages`);
    for (const name of ['apt', 'dpkg', 'perl-base', 'bash', 'coreutils', 'ca-certificates']) assert.ok(!packages.includes(name), `no ${name}`);
  });

  it("caps V8's heap well inside the DaemonSet's memory limit, so garbage of a large config cannot pile up past it", () => {
    const env = instructions(runtime, 'ENV').find((e) => e.startsWith('NODE_OPTIONS=')) ?? '';
    const m = /--max-old-space-size=(\d+)/.exec(env);
    assert.ok(m, `NODE_OPTIONS sets --max-old-space-size: ${env}`);
    const limit = /^(\d+)Mi$/.exec(String(at(container(loadDaemonSet()), 'resources', 'limits', 'memory')));
    assert.ok(limit, 'memory limit in Mi');
    // Measured (docs/performance.md "Limits"): the process is about 67 MiB besides the heap, and the largest
    // accepted config peaked at 229 MiB resident with a 160 MiB heap cap.
    assert.ok(Number(m[1]) + 90 <= Number(limit[1]), `heap cap ${m[1]} MiB + 90 MiB within the ${limit[1]} MiB limit`);
    // A large config's parse grows the young generation to 16 MiB a semi-space, kept for good
    // unless capped (docs/performance.md "Limits": 10,000 CIDRs 96 -> 74 MiB resident with 4).
    const semi = /--max-semi-space-size=(\d+)/.exec(env);
    assert.ok(semi && Number(semi[1]) <= 4, `NODE_OPTIONS caps the semi-space at 4 MiB or less: ${env}`);
  });

  it("starts the bundled agent at package.json's bin path, and stays root for netfilter", () => {
    const bin = pkg.bin['ip-masq-agent'];
    assert.equal(bin, 'dist/bin/ip-masq-agent.js');
    assert.deepEqual(JSON.parse(instructions(runtime, 'ENTRYPOINT')[0] ?? 'null'), ['/usr/bin/tini', '--', '/usr/local/bin/node', `/app/${bin}`], 'tini as PID 1');
    assert.deepEqual(instructions(runtime, 'WORKDIR'), ['/app']);
    assert.ok(
      instructions(runtime, 'COPY').some((c) => /package\.json \.\/package\.json$/.test(c)),
      'package.json two levels above the bundle (the version is read from it)',
    );
    const bundler = readRepoFile('scripts/bundle.mjs');
    assert.ok(bundler.includes("entryPoints: ['src/main.ts']") && bundler.includes(`outfile: '${bin}'`), 'src/main.ts is bundled to the bin path');
    assert.ok(existsSync(join(repoRoot(), 'src/main.ts')), 'src/main.ts exists');
    assert.deepEqual(instructions(runtime, 'USER'), [], 'no USER: capabilities added by the pod spec are effective only for root');
  });

  it('the `ip-masq-agent` command in the image runs the same entry point, under tini when it is PID 1', () => {
    const wrapper = readRepoFile('deploy/image/ip-masq-agent');
    assert.match(wrapper, /^#!\/bin\/sh\n/);
    assert.match(wrapper, /^if \[ "\$\$" = 1 \]; then\n {2}exec \/usr\/bin\/tini -- \/usr\/local\/bin\/node \/app\/dist\/bin\/ip-masq-agent\.js "\$@"\nfi$/m);
    assert.match(wrapper, /^exec \/usr\/local\/bin\/node \/app\/dist\/bin\/ip-masq-agent\.js "\$@"$/m);
  });

  it('labels the image with its version, revision and source (build ARGs scripts/image.sh passes)', () => {
    const label = instructions(runtime, 'LABEL').join(' ');
    for (const [key, arg] of [
      ['version', 'VERSION'],
      ['revision', 'REVISION'],
      ['source', 'SOURCE'],
    ] as const) {
      assert.ok(label.includes(`org.opencontainers.image.${key}="\${${arg}}"`), `${key} from ARG ${arg}: ${label}`);
      assert.ok(
        instructions(runtime, 'ARG').some((a) => a.startsWith(`${arg}=`)),
        `ARG ${arg} in the final stage`,
      );
      assert.match(readRepoFile('scripts/image.sh'), new RegExp(`--build-arg "${arg}=`), `image.sh passes ${arg}`);
    }
  });

  it('.dockerignore lets in everything the Dockerfile copies from the build context', () => {
    const allow = readRepoFile('.dockerignore')
      .split('\n')
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1).replace(/\/$/, ''));
    const sources = stages
      .flatMap((s) => instructions(s, 'COPY'))
      .filter((c) => !c.startsWith('--from='))
      .flatMap((c) => c.split(' ').slice(0, -1));
    assert.ok(sources.length >= 4, sources.join(' '));
    for (const src of sources)
      assert.ok(
        allow.some((a) => src === a || src.startsWith(`${a}/`)),
        `${src} is not allowed in`,
      );
  });
});

describe('README.md (deploy and troubleshooting sections)', () => {
  const doc = readRepoFile('README.md');

  it("gives the user guide's three steps unchanged", () => {
    assert.ok(doc.includes('kubectl label nodes my-node node.kubernetes.io/masq-agent-ds-ready=true'));
    assert.ok(doc.includes('kubectl create configmap ip-masq-agent --from-file=config --namespace=kube-system'));
    assert.ok(doc.includes(`kubectl apply -f ${DAEMONSET_FILE}`));
  });

  it('names only files that exist', () => {
    const local = doc.replace(/https?:\/\/\S+/g, '');
    const paths = [...new Set([...local.matchAll(/\b(?:deploy|docs)\/[\w./-]*[\w-]/g)].map((m) => m[0]))];
    assert.ok(paths.length > 3, paths.join(' '));
    for (const p of paths) assert.ok(existsSync(join(repoRoot(), p)), `${p} is named in README.md but does not exist`);
  });
});
