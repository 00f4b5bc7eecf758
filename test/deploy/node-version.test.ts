// The project's Node.js release is pinned once, by the Dockerfile's NODE_VERSION (scripts/setup.sh
// installs it for the build, the tests and the benches; the image's build stages and its root
// filesystem use it, test/deploy/manifests.test.ts checks those). What cannot read that line must
// agree with it: package.json, its lockfile, the bundle's target, and the runtime these tests run on.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { dockerfileGlobalArgs, readRepoFile } from './deploy-files.js';

const dockerfile = readRepoFile('Dockerfile');
const pinned = dockerfileGlobalArgs(dockerfile).get('NODE_VERSION') ?? '';
const major = pinned.split('.')[0] ?? '';

describe('Node.js version pin', () => {
  it('is one exact release of an LTS line (even major) in the Dockerfile', () => {
    assert.match(pinned, /^\d+\.\d+\.\d+$/, `ARG NODE_VERSION=${pinned}`);
    assert.equal(Number(major) % 2, 0, `Node.js ${major} is not an LTS line (odd majors never become LTS)`);
  });

  it('is the major that package.json, its lockfile and the bundle target name', () => {
    const pkg = JSON.parse(readRepoFile('package.json')) as { engines: { node: string }; devDependencies: Record<string, string> };
    assert.equal(pkg.engines.node, `>=${major}`, 'package.json engines.node');
    assert.equal(pkg.devDependencies['@types/node']?.split('.')[0], major, 'package.json @types/node');
    const lock = JSON.parse(readRepoFile('package-lock.json')) as { packages: Record<string, { version?: string; engines?: { node?: string } }> };
    assert.equal(lock.packages['node_modules/@types/node']?.version?.split('.')[0], major, 'package-lock.json @types/node');
    assert.equal(lock.packages['']?.engines?.node, `>=${major}`, 'package-lock.json engines.node');
    assert.match(readRepoFile('scripts/bundle.mjs'), new RegExp(`target: 'node${major}'`), 'scripts/bundle.mjs target');
  });

  it('is the Node.js these tests run on (bash scripts/test.sh, or .node/bin first on PATH after bash scripts/setup.sh)', () => {
    assert.equal(process.version, `v${pinned}`, `the tests run on ${process.execPath} ${process.version}, the image on Node.js ${pinned}`);
  });
});
