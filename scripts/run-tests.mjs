// Runs the compiled test files with node's test runner.
// Usage: node scripts/run-tests.mjs [unit|integration]   (default: all)
// Integration tests (dist/test/**/*.integration.test.js) need root, iproute2, iptables and nftables;
// they create their own network namespaces and remove them.
// The image tests (dist/test/image/) also need podman; they are skipped, saying so, without it.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const which = process.argv[2] ?? 'all';
const root = 'dist/test';
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
};
walk(root);
const isIntegration = (f) => f.endsWith('.integration.test.js');
const selected = files.filter((f) => (which === 'unit' ? !isIntegration(f) : which === 'integration' ? isIntegration(f) : true));
if (selected.length === 0) {
  console.error(`no test files found for "${which}" under ${root}`);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--enable-source-maps', '--test', '--test-concurrency=1', ...selected], {
  stdio: 'inherit',
});
process.exit(r.status ?? 1);
