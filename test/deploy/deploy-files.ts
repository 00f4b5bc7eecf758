// Reading the deployment files (manifests, kustomizations, Dockerfile) for the deploy tests.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';

/** A parsed YAML value: these tests walk manifests as plain data. */
export type Yaml = unknown;

/** The repository root: the nearest folder above this file holding the project's package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'ip-masq-agent') {
      return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('repository root (package.json of ip-masq-agent) not found');
    dir = up;
  }
}

/** Reads a file given relative to the repository root. */
export function readRepoFile(path: string): string {
  return readFileSync(join(repoRoot(), path), 'utf8');
}

/** Every `.yaml`/`.yml` file under `dir` (relative to the root), as root-relative paths, sorted. */
export function listYamlFiles(dir: string): string[] {
  const root = repoRoot();
  const found: string[] = [];
  const walk = (abs: string): void => {
    for (const name of readdirSync(abs).sort()) {
      const p = join(abs, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.ya?ml$/.test(name)) found.push(relative(root, p));
    }
  };
  walk(join(root, dir));
  return found;
}

/** Parses every document of a YAML file (empty documents dropped); throws on any YAML error. */
export function loadYamlDocuments(path: string): Yaml[] {
  const docs = parseAllDocuments(readRepoFile(path));
  if (!Array.isArray(docs)) return [];
  const out: Yaml[] = [];
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value: Yaml = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

/** Reads `obj.a.b[0].c` style paths; undefined when any step is missing. */
export function at(obj: Yaml, ...path: (string | number)[]): Yaml {
  let cur: Yaml = obj;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, Yaml>)[key];
  }
  return cur;
}

/** Narrows to an array, failing loudly otherwise. */
export function asArray(value: Yaml, what: string): Yaml[] {
  if (!Array.isArray(value)) throw new Error(`${what}: expected a list, got ${JSON.stringify(value)}`);
  return value as Yaml[];
}

/** Narrows to a string, failing loudly otherwise. */
export function asString(value: Yaml, what: string): string {
  if (typeof value !== 'string') throw new Error(`${what}: expected a string, got ${JSON.stringify(value)}`);
  return value;
}

/** The models these manifests may use, by `apiVersion/kind`; any other kind is a test failure. */
const MODELS: Record<string, (data: Yaml) => { validate(): void }> = {
  'apps/v1/DaemonSet': (d) => new DaemonSet(d as ConstructorParameters<typeof DaemonSet>[0]),
  'v1/ConfigMap': (d) => new ConfigMap(d as ConstructorParameters<typeof ConfigMap>[0]),
};

/** Validates one object against the Kubernetes API's JSON schema; throws with the schema's message. */
export function validateManifest(obj: Yaml, where: string): void {
  const key = `${String(at(obj, 'apiVersion'))}/${String(at(obj, 'kind'))}`;
  const model = MODELS[key];
  if (!model) throw new Error(`${where}: no schema known for ${key}`);
  model(obj).validate();
  const unknown = unknownFieldNames(obj);
  if (unknown.length > 0) throw new Error(`${where}: fields unknown to the Kubernetes API: ${unknown.join(', ')}`);
}

// Maps whose keys are data, not field names.
const FREE_FORM = new Set(['labels', 'annotations', 'matchLabels', 'nodeSelector', 'data', 'binaryData', 'requests', 'limits']);
let vocabulary: Set<string> | undefined;

/**
 * Every field name of the Kubernetes API, read from the typed models' declarations. The models'
 * validators ignore unknown fields (as the API server does without strict validation), so a typo
 * such as `readOnlyRootFileSystem` would pass them and silently do nothing; this catches it.
 */
export function kubernetesFieldNames(): Set<string> {
  if (vocabulary) return vocabulary;
  const names = new Set<string>();
  const roots = ['node_modules/kubernetes-models', 'node_modules/@kubernetes-models/apimachinery'];
  const walk = (abs: string): void => {
    for (const name of readdirSync(abs)) {
      const p = join(abs, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name.endsWith('.d.ts')) {
        for (const m of readFileSync(p, 'utf8').matchAll(/^\s+"([A-Za-z0-9_$.-]+)"\??:/gm)) names.add(m[1] ?? '');
      }
    }
  };
  for (const r of roots) walk(join(repoRoot(), r));
  if (names.size < 500) throw new Error(`only ${names.size} Kubernetes field names found: declarations moved?`);
  vocabulary = names;
  return names;
}

/** Field names in `obj` (outside free-form maps) that no Kubernetes API type declares, as paths. */
export function unknownFieldNames(obj: Yaml, path = ''): string[] {
  if (Array.isArray(obj)) return obj.flatMap((v, i) => unknownFieldNames(v, `${path}[${i}]`));
  if (obj === null || typeof obj !== 'object') return [];
  const known = kubernetesFieldNames();
  const out: string[] = [];
  for (const [key, value] of Object.entries(obj as Record<string, Yaml>)) {
    const here = path === '' ? key : `${path}.${key}`;
    if (!known.has(key)) out.push(here);
    else if (!FREE_FORM.has(key)) out.push(...unknownFieldNames(value, here));
  }
  return out;
}

/** One Dockerfile instruction, continuation lines joined, comments dropped. */
export interface DockerInstruction {
  readonly keyword: string;
  readonly args: string;
}

/** One build stage: its FROM image (ARG defaults substituted), --platform, name, and instructions. */
export interface DockerStage {
  readonly from: string;
  /** FROM's --platform value as written (e.g. $BUILDPLATFORM), undefined without one. */
  readonly platform: string | undefined;
  readonly name: string | undefined;
  readonly instructions: readonly DockerInstruction[];
}

/** The global ARGs of a Dockerfile (those before the first FROM), defaults substituted in order. */
export function dockerfileGlobalArgs(text: string): Map<string, string> {
  const args = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (/^FROM\s/i.test(line)) break;
    const m = /^ARG\s+(\w+)=(\S+)\s*$/.exec(line);
    if (m) args.set(m[1] ?? '', substituteArgs(m[2] ?? '', args));
  }
  return args;
}

/** `${NAME}` and `$NAME` replaced by the ARG's value ('' when there is none, as docker does). */
function substituteArgs(text: string, args: ReadonlyMap<string, string>): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => args.get(a ?? b ?? '') ?? '');
}

/** Splits a Dockerfile into stages, substituting the global ARG defaults into FROM lines. */
export function parseDockerfile(text: string): DockerStage[] {
  const joined = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const instructions = joined
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .map((line) => {
      const m = /^(\S+)\s*(.*)$/.exec(line);
      return { keyword: (m?.[1] ?? '').toUpperCase(), args: (m?.[2] ?? '').replace(/\s+/g, ' ') };
    });
  const globalArgs = dockerfileGlobalArgs(text);
  const stages: { from: string; platform: string | undefined; name: string | undefined; instructions: DockerInstruction[] }[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const m = /^(?:--platform=(\S+)\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      stages.push({ from: substituteArgs(m?.[2] ?? '', globalArgs), platform: m?.[1], name: m?.[3], instructions: [] });
    } else if (stages.length > 0) {
      stages[stages.length - 1]?.instructions.push(ins);
    }
  }
  return stages;
}
