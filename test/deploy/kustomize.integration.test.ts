// `kubectl apply -k` and the guide's `kubectl create configmap`, run for real through kubectl's own
// kustomize and its client-side dry run (no cluster needed). Skipped where kubectl is not installed.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { at, asArray, loadYamlDocuments, repoRoot, validateManifest, type Yaml } from './deploy-files.js';

const hasKubectl = ((): boolean => {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore', timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
})();
const skip = hasKubectl ? false : 'kubectl is not installed';

function kubectl(args: string[], cwd = repoRoot()): Yaml[] {
  const out = execFileSync('kubectl', args, { cwd, encoding: 'utf8', timeout: 60_000 });
  return parseAllDocuments(out)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(d.errors.map((e) => e.message).join('; '));
      return d.toJS() as Yaml;
    })
    .filter((d) => d !== null && d !== undefined);
}

describe('kubectl kustomize and create, on the real kubectl', { skip }, () => {
  let overlay = '';
  before(() => {
    overlay = mkdtempSync(join(tmpdir(), 'ip-masq-overlay-'));
  });
  after(() => {
    if (overlay !== '') rmSync(overlay, { recursive: true, force: true });
  });

  it('`kubectl apply -k deploy/` applies exactly deploy/ip-masq-agent.yaml', () => {
    assert.deepEqual(kubectl(['kustomize', 'deploy']), loadYamlDocuments('deploy/ip-masq-agent.yaml'));
  });

  it('an overlay with the multi-source component renders valid objects that read both ConfigMaps', () => {
    const deploy = relative(overlay, join(repoRoot(), 'deploy'));
    writeFileSync(join(overlay, 'kustomization.yaml'), `resources:\n  - ${deploy}\ncomponents:\n  - ${deploy}/examples/multi-source\n`);
    const objects = kubectl(['kustomize', overlay]);
    for (const obj of objects) validateManifest(obj, 'rendered overlay');
    assert.deepEqual(objects.map((o) => `${String(at(o, 'kind'))}/${String(at(o, 'metadata', 'name'))}`).sort(), ['ConfigMap/ip-masq-platform', 'DaemonSet/ip-masq-agent']);
    const ds = objects.find((o) => at(o, 'kind') === 'DaemonSet');
    const spec = at(ds, 'spec', 'template', 'spec');
    const volumes = asArray(at(spec, 'volumes'), 'volumes');
    assert.deepEqual(volumes.map((v) => at(v, 'name')).sort(), ['config-sources', 'tmp', 'xtables-lock']);
    const mounts = asArray(at(spec, 'containers', 0, 'volumeMounts'), 'volumeMounts');
    assert.equal(
      at(
        mounts.find((m) => at(m, 'mountPath') === '/etc/config'),
        'name',
      ),
      'config-sources',
    );
    assert.equal(asArray(at(spec, 'containers', 0, 'args'), 'args').at(-1), '--config=/etc/config');
  });

  it("the guide's `kubectl create configmap ... --from-file=config` makes the example ConfigMap", () => {
    const [created] = kubectl(['create', 'configmap', 'ip-masq-agent', '--from-file=config', '--namespace=kube-system', '--dry-run=client', '-o', 'yaml'], join(repoRoot(), 'deploy/examples'));
    const [example] = loadYamlDocuments('deploy/examples/configmap.yaml');
    assert.deepEqual(at(created, 'data'), at(example, 'data'));
    assert.equal(at(created, 'metadata', 'name'), at(example, 'metadata', 'name'));
    assert.equal(at(created, 'metadata', 'namespace'), at(example, 'metadata', 'namespace'));
  });
});
