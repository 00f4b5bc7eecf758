// Bundles the agent into one file, dist/bin/ip-masq-agent.js: what package.json's bin, the image
// and the integration tests run. One minified file loads in about half the time and memory of the
// ~80 compiled modules under dist/src (docs/performance.md). Run by `npm run build` after tsc,
// which type-checks; esbuild only strips the types.
//
// CommonJS, not an ES module (docs/performance.md): Node then starts without its ES module
// loader, and each module's imports of Node's own modules become require() calls that run when the
// module is first used, not all at start; `--version` loads none of http, child_process or crypto.
// The package is "type": "module", so dist/bin/package.json says this directory is CommonJS.
//
// The yaml library is a file of its own beside it, dist/bin/ip-masq-agent-yaml.js, required when
// first used: the agent reads a plain config without it (config/fragment.ts), and V8 would
// otherwise pre-parse its 116 KB at every start. Only the library, none of our modules, is in that
// file, so no module of ours exists twice.
import { build } from 'esbuild';
import { writeFileSync } from 'node:fs';

const YAML_FILE = 'ip-masq-agent-yaml.js';

/** `import ... from 'yaml'` becomes require('./ip-masq-agent-yaml.js'), beside the bundle. */
const yamlApart = {
  name: 'yaml-apart',
  setup(b) {
    b.onResolve({ filter: /^yaml$/ }, () => ({ path: `./${YAML_FILE}`, external: true }));
  },
};

const common = { bundle: true, platform: 'node', target: 'node26', format: 'cjs', minify: true, keepNames: true, legalComments: 'none', logLevel: 'warning' };

await build({
  ...common,
  stdin: { contents: "module.exports = require('yaml');", resolveDir: process.cwd(), sourcefile: 'yaml-library.js' },
  outfile: `dist/bin/${YAML_FILE}`,
});

await build({
  ...common,
  plugins: [yamlApart],
  entryPoints: ['src/main.ts'],
  // Two levels under the package root, as dist/src/main.js is: main.ts reads ../../package.json.
  outfile: 'dist/bin/ip-masq-agent.js',
  // import() of a Node module becomes a require() when it runs (import() would start the ES module loader).
  supported: { 'dynamic-import': false },
  // import.meta.url (main.ts) as an ES module would see it: the bundle's own URL.
  define: { 'import.meta.url': '__importMetaUrl' },
  // "use strict" first: the TypeScript is module code, strict; a statement before esbuild's own
  // "use strict" would turn that into a no-op and the bundle into sloppy code.
  banner: { js: "'use strict';\nconst __importMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  // Readable function names (common.keepNames) in the stack of a fatal error, for a bug report.
  sourcemap: true,
});
writeFileSync('dist/bin/package.json', `${JSON.stringify({ type: 'commonjs' })}\n`);
