// What `ip-masq-agent` loads: the compiled import graph from dist/src/main.js, walked statically
// (static imports, re-exports and literal dynamic imports). zod costs about 14 MiB resident and
// 100 ms at start, and only the JSON Schema export (config/schema.ts) needs it, so no path from
// the agent's entry may reach zod or schema.js, nor a package that itself depends on zod.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { findRepoRoot } from './fixtures/go-tsv.js';

const root = findRepoRoot();

/** The compiled modules reachable from `entry`, and the packages (bare specifiers) they import, with who imports them; `staticOnly` skips import(). */
function walkImports(entry: string, staticOnly = false): { modules: Set<string>; packages: Map<string, string> } {
  const modules = new Set<string>();
  const packages = new Map<string, string>();
  const pending = [entry];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (modules.has(file)) continue;
    modules.add(file);
    const read = readFileSync(file, 'utf8');
    const text = staticOnly ? read.replace(/\bimport\s*\(\s*(['"])[^'"]*\1\s*\)/g, '0') : read;
    // A computed import() could load anything unseen here: there must be none.
    assert.doesNotMatch(text, /\bimport\s*\(\s*[^'"\s]/, `${relative(root, file)} has an import() whose target cannot be read statically`);
    for (const { fileName: spec } of ts.preProcessFile(text, true, true).importedFiles) {
      if (spec.startsWith('.')) pending.push(resolve(dirname(file), spec));
      else if (!spec.startsWith('node:')) {
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
        if (!packages.has(name)) packages.set(name, relative(root, file));
      }
    }
  }
  return { modules, packages };
}

/** The runtime dependencies a package declares. */
function declaredDependencies(name: string): string[] {
  const manifest = join(root, 'node_modules', name, 'package.json');
  if (!existsSync(manifest)) return [];
  const pkg = JSON.parse(readFileSync(manifest, 'utf8')) as { dependencies?: Record<string, string>; peerDependencies?: Record<string, string> };
  return [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})];
}

test('the agent entry (dist/src/main.js) never imports zod, directly or through schema.js or a package', () => {
  const { modules, packages } = walkImports(join(root, 'dist', 'src', 'main.js'));
  assert.equal(modules.has(join(root, 'dist', 'src', 'config', 'schema.js')), false, 'config/schema.js is reached');
  assert.equal(packages.get('zod'), undefined, `zod is imported by ${packages.get('zod')}`);
  for (const name of packages.keys()) assert.ok(!declaredDependencies(name).includes('zod'), `${name} depends on zod`);
  // Not vacuous: the walk reaches the config parser, the CLI commands and the packages the agent uses.
  for (const m of ['config/parse.js', 'config/keys.js', 'config/structure.js', 'cli/validate.js', 'agent/agent.js']) {
    assert.ok(modules.has(join(root, 'dist', 'src', m)), `${m} is reached`);
  }
  assert.ok(packages.has('yaml'), 'the yaml package is reached');
});

test('the walk sees zod where it is imported: the JSON Schema export', () => {
  assert.equal(walkImports(join(root, 'dist', 'src', 'config', 'schema.js')).packages.get('zod'), 'dist/src/config/schema.js');
});

test('the agent reaches the yaml package only through an import(): a plain config is read without it', () => {
  // main.js imports agent-start.js and the agent's runtime (agent-runtime.js) once the flags are read; the config
  // loader imports the yaml library's reading (parse.js) only for a text the plain readers refuse.
  for (const entry of ['main.js', 'agent-start.js', 'agent-runtime.js']) {
    const { modules, packages } = walkImports(join(root, 'dist', 'src', entry), true);
    assert.equal(packages.get('yaml'), undefined, `${entry}: yaml is imported by ${packages.get('yaml')}`);
    assert.equal(modules.has(join(root, 'dist', 'src', 'config', 'parse.js')), false, `${entry}: config/parse.js is reached`);
  }
  // Not vacuous: the static walk reaches the loader and the plain readers, and import() reaches the library.
  const { modules } = walkImports(join(root, 'dist', 'src', 'agent-runtime.js'), true);
  for (const m of ['config/load.js', 'config/fragment.js', 'config/plain-yaml.js', 'agent/agent.js']) assert.ok(modules.has(join(root, 'dist', 'src', m)), `${m} is reached`);
  assert.equal(walkImports(join(root, 'dist', 'src', 'config', 'load.js')).packages.get('yaml') !== undefined, true);
});

test('the shipped bundle (dist/bin) is strict CommonJS, marked so beside it, with no import() left and the yaml library apart', () => {
  const bin = join(root, 'dist', 'bin');
  assert.deepEqual(JSON.parse(readFileSync(join(bin, 'package.json'), 'utf8')), { type: 'commonjs' });
  const text = readFileSync(join(bin, 'ip-masq-agent.js'), 'utf8');
  // The first statement after the #! line: anything before "use strict" would make the code sloppy.
  assert.match(text, /^#!\/usr\/bin\/env node\n'use strict';\n/);
  // An import() would start node's ES module loader when it runs; esbuild turns them into require().
  assert.doesNotMatch(text, /\bimport\(/);
  assert.doesNotMatch(text, /\bimport\.meta\b/);
  // The yaml library is the file beside it, not inside it (one of the library's own messages).
  const yamlMessage = 'Implicit keys need to be on a single line';
  assert.ok(!text.includes(yamlMessage), 'the yaml library is not in the bundle');
  assert.ok(text.includes('require("./ip-masq-agent-yaml.js")'), 'the bundle requires the library beside it');
  assert.ok(readFileSync(join(bin, 'ip-masq-agent-yaml.js'), 'utf8').includes(yamlMessage), 'the library is in ip-masq-agent-yaml.js');
});
