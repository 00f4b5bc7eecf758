// Imports point inward (HOUSE-STYLE.md, "Dependencies point inward"): the core (config, net,
// policy) never reaches an edge, backends and observe never reach the agent or its edges, and no
// src file imports itself through others. Read from the TypeScript sources, so `import type`
// counts as well: a type two layers need lives in the lower one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { findRepoRoot } from './fixtures/go-tsv.js';

const src = join(findRepoRoot(), 'src');

/** A layer of src/: the folder, or the group a top-level file belongs to. */
type Layer = 'base' | 'config' | 'net' | 'policy' | 'backends' | 'exec' | 'observe' | 'agent' | 'cli' | 'server' | 'main';

const FOLDERS: readonly Layer[] = ['config', 'net', 'policy', 'backends', 'exec', 'observe', 'agent', 'cli', 'server'];
/** Top-level files outside the shared base: the composition root with what it loads lazily. */
const TOP_LEVEL: Readonly<Record<string, Layer>> = {
  'main.ts': 'main',
  'agent-start.ts': 'main',
  'agent-runtime.ts': 'main',
};

/** The layer of a file given relative to src/ ('config/merge.ts'); any other top-level file is the shared base. */
function layerOf(file: string): Layer {
  const folder = file.includes('/') ? file.slice(0, file.indexOf('/')) : undefined;
  if (folder === undefined) return TOP_LEVEL[file] ?? 'base';
  const layer = FOLDERS.find((l) => l === folder);
  assert.ok(layer !== undefined, `src/${folder}/ has no layer: add it to imports.test.ts`);
  return layer;
}

/** Layers a layer must never import, per the rules above. */
const FORBIDDEN: Readonly<Partial<Record<Layer, readonly Layer[]>>> = {
  base: ['config', 'net', 'policy', 'backends', 'exec', 'observe', 'agent', 'cli', 'server', 'main'],
  config: ['policy', 'backends', 'agent', 'cli', 'server', 'observe', 'exec', 'main'],
  net: ['config', 'policy', 'backends', 'agent', 'cli', 'server', 'observe', 'exec', 'main'],
  policy: ['backends', 'agent', 'cli', 'server', 'observe', 'exec', 'main'],
  backends: ['agent', 'cli', 'server', 'main'],
  observe: ['agent', 'cli', 'server', 'main'],
};

/** Every .ts file under src/, relative to it. */
function sourceFiles(dir = src): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) return sourceFiles(p);
      return name.endsWith('.ts') ? [relative(src, p)] : [];
    });
}

/** The src files each src file imports (static, `import type`, re-exports and literal import()), relative to src/. */
function importGraph(files: readonly string[]): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(join(src, file), 'utf8');
    // A computed import() could load anything unseen here: there must be none.
    assert.doesNotMatch(text, /\bimport\s*\(\s*[^'"\s]/, `src/${file} has an import() whose target cannot be read statically`);
    const targets = ts
      .preProcessFile(text, true, true)
      .importedFiles.map((f) => f.fileName)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => relative(src, resolve(dirname(join(src, file)), spec)).replace(/\.js$/, '.ts'));
    for (const t of targets) assert.ok(files.includes(t), `src/${file} imports ${t}, which is not a src file`);
    graph.set(file, [...new Set(targets)]);
  }
  return graph;
}

/** Every outward import: `from -> to (fromLayer -> toLayer)`. */
function outwardImports(graph: ReadonlyMap<string, readonly string[]>): string[] {
  const found: string[] = [];
  for (const [from, targets] of graph) {
    const forbidden = FORBIDDEN[layerOf(from)] ?? [];
    for (const to of targets) if (forbidden.includes(layerOf(to))) found.push(`${from} -> ${to} (${layerOf(from)} -> ${layerOf(to)})`);
  }
  return found;
}

/** The import circles: each strongly connected group of two or more files (or one importing itself), sorted. */
function importCircles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  // Tarjan's algorithm, recursive: src is a few hundred files deep at most.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const circles: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const group: string[] = [];
    for (let w = stack.pop()!; ; w = stack.pop()!) {
      onStack.delete(w);
      group.push(w);
      if (w === v) break;
    }
    if (group.length > 1 || (graph.get(v) ?? []).includes(v)) circles.push(group.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return circles.sort((a, b) => a[0]!.localeCompare(b[0]!));
}

const graph = importGraph(sourceFiles());

test('imports point inward: config, net and policy reach no edge, net never config or policy, config never policy; backends and observe never the agent, cli or server', () => {
  assert.deepEqual(outwardImports(graph), []);
});

test('no import circle among src files', () => {
  assert.deepEqual(
    importCircles(graph).map((c) => c.join(' <-> ')),
    [],
  );
});

test('the checks are not vacuous: they see every layer, an outward import and a circle', () => {
  const layers = new Set([...graph.keys()].map(layerOf));
  for (const l of ['base', ...FOLDERS, 'main'] as const) assert.ok(layers.has(l), `no file in layer ${l}`);
  assert.ok(graph.get('main.ts')!.includes('agent-runtime.ts'), 'the literal import() of main.ts is seen');
  assert.ok(graph.get('agent/agent.ts')!.includes('backends/backend.ts'), 'an import type is seen');
  const bad = new Map(graph);
  bad.set('net/cidr.ts', [...graph.get('net/cidr.ts')!, 'cli/index.ts']);
  bad.set('net/normalize.ts', [...graph.get('net/normalize.ts')!, 'policy/types.ts']);
  bad.set('observe/log.ts', ['agent/agent.ts']);
  assert.deepEqual(outwardImports(bad), ['net/cidr.ts -> cli/index.ts (net -> cli)', 'net/normalize.ts -> policy/types.ts (net -> policy)', 'observe/log.ts -> agent/agent.ts (observe -> agent)']);
  assert.deepEqual(
    importCircles(new Map([...graph, ['errors.ts', ['excerpt.ts']], ['excerpt.ts', ['errors.ts']]])).filter((c) => c.includes('errors.ts')),
    [['errors.ts', 'excerpt.ts']],
  );
});
