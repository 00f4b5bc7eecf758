// Runs the compiled test files with node's test runner.
// Usage: node scripts/run-tests.mjs [unit|integration]   (default: all)
// Integration tests (dist/test/**/*.integration.test.js) need root, iproute2, iptables and nftables;
// they create their own network namespaces and remove them.
// The image tests (dist/test/image/) also need podman; they are skipped, saying so, without it.
// Run as root, it reads this machine's own netfilter state (read-only) before and after, and fails
// the run if the tests changed it: every test must work in namespaces of its own.
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
/** This namespace's nat rules and nft ruleset, less counters and comments; '' for a tool not installed. */
const hostNetfilter = () =>
  [
    ['iptables-nft-save', '-t', 'nat'],
    ['ip6tables-nft-save', '-t', 'nat'],
    ['iptables-legacy-save', '-t', 'nat'],
    ['ip6tables-legacy-save', '-t', 'nat'],
    ['nft', 'list', 'ruleset'],
  ]
    .map((argv) => spawnSync(argv[0], argv.slice(1), { encoding: 'utf8' }).stdout ?? '')
    .join('\n')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, '').replace(/ ?counter packets \d+ bytes \d+/, ''))
    .join('\n');
const asRoot = process.getuid?.() === 0;
const before = asRoot ? hostNetfilter() : '';
const r = spawnSync(process.execPath, ['--enable-source-maps', '--test', '--test-concurrency=1', ...selected], {
  stdio: 'inherit',
});
const after = asRoot ? hostNetfilter() : '';
if (after !== before) {
  const was = new Set(before.split('\n'));
  const added = after.split('\n').filter((l) => !was.has(l));
  console.error(`the tests changed this machine's own netfilter state (tests must use namespaces of their own); new lines:\n${added.slice(0, 20).join('\n')}`);
  process.exit(1);
}
process.exit(r.status ?? 1);
