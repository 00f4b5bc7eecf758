// Bundles the agent into one file, dist/bin/ip-masq-agent.js: what package.json's bin, the image
// and the integration tests run. One minified file loads in about half the time and memory of the
// ~80 compiled modules under dist/src (README "Performance"). Run by `npm run build` after tsc,
// which type-checks; esbuild only strips the types.
import { build } from 'esbuild';

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
  // yaml ships CommonJS for Node; its require() of built-ins needs a real require in an ES module.
  banner: { js: "import { createRequire as __createRequire } from 'node:module';\nconst require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
});
