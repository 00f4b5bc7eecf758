// Bundles the agent into one file, dist/bin/ip-masq-agent.js: what package.json's bin, the image
// and the integration tests run. One minified file loads in about half the time and memory of the
// ~80 compiled modules under dist/src (README "Performance"). Run by `npm run build` after tsc,
// which type-checks; esbuild only strips the types.
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const ZOD_EN = fileURLToPath(new URL('../node_modules/zod/v4/locales/en.js', import.meta.url));

/**
 * zod re-exports its 40-odd message locales as `z.locales` (and `z.core.locales`), which pulls
 * them all into the bundle: 266 KB of the 742 KB, 3 MiB resident at --version. The agent uses
 * only English, which zod sets by default from locales/en.js; only that one stays.
 */
const zodEnglishOnly = {
  name: 'zod-english-only',
  setup(b) {
    const reexporter = /[/\\]zod[/\\]v4[/\\](classic[/\\]external|core[/\\]index)\.js$/;
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) => (reexporter.test(args.importer) ? { path: 'en', namespace: 'zod-locales' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, () => ({ contents: `export { default as en } from ${JSON.stringify(ZOD_EN)};`, loader: 'js', resolveDir: '.' }));
  },
};

await build({
  entryPoints: ['src/main.ts'],
  // Two levels under the package root, as dist/src/main.js is: version.ts reads ../../package.json.
  outfile: 'dist/bin/ip-masq-agent.js',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  minify: true,
  // Readable function names in the stack of a fatal error, for a bug report.
  keepNames: true,
  sourcemap: true,
  legalComments: 'none',
  plugins: [zodEnglishOnly],
  // yaml ships CommonJS for Node; its require() of built-ins needs a real require in an ES module.
  banner: { js: "import { createRequire as __createRequire } from 'node:module';\nconst require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
});
