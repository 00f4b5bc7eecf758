// explain and validate on the longest-prefix keys: the deciding entry, the action, why; conflicts,
// redundancy, and both backends accepting the keys.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cli, tempDir, type TempDir } from './cli-helpers.js';

let tmp: TempDir;
let config = '';
before(async () => {
  tmp = await tempDir();
  config = await tmp.write(
    'ip-masq-agent',
    [
      'nonMasqueradeCIDRs: [10.0.0.0/8]',
      'masqueradeCIDRs:',
      '  - 10.9.0.0/16',
      '  - 169.254.169.254/32',
      'snat:',
      '  - cidrs: [198.51.100.0/24]',
      '    toSource: 203.0.113.50',
      'masqueradeSourceCIDRs: [10.244.0.0/16]',
      '',
    ].join('\n'),
  );
});
after(() => tmp.remove());

test('explain names the deciding entry, its list and place, the action, and the shorter prefix it beats', async () => {
  const r = await cli(['explain', '--config', config, '--source', '10.244.1.5', '10.9.1.1', '10.1.1.1', '169.254.169.254', '198.51.100.7', '--output', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const [exception, kept, metadata, snat] = JSON.parse(r.stdout);
  assert.equal(exception.action, 'masquerade');
  assert.deepEqual(exception.match, { list: 'masqueradeCIDRs', cidr: '10.9.0.0/16', source: config, path: 'masqueradeCIDRs[0]', line: 3, column: 5 });
  assert.match(exception.explanation, new RegExp(`wins over the shorter 10\\.0\\.0\\.0/8 \\(nonMasqueradeCIDRs, ${config}:1:22 nonMasqueradeCIDRs\\[0\\]: keep the pod IP\\)`));
  assert.equal(kept.action, 'keep');
  assert.equal(metadata.action, 'masquerade');
  assert.match(metadata.explanation, /wins over the shorter 169\.254\.0\.0\/16 \(link-local/);
  assert.equal(snat.action, 'snat');
  assert.equal(snat.toSource, '203.0.113.50');
  assert.equal(snat.match.path, 'snat[0].cidrs[0]');
  assert.match(snat.explanation, /SNAT --to-source 203\.0\.113\.50 --random-fully/);
});

test('explain --source outside masqueradeSourceCIDRs: not translated, and says why', async () => {
  const r = await cli(['explain', '--config', config, '--source', '192.0.2.9', '198.51.100.7', '203.0.113.9']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^198\.51\.100\.7 +keep pod IP +\(the source is outside masqueradeSourceCIDRs \(10\.244\.0\.0\/16\)/m);
  assert.match(r.stdout, /^203\.0\.113\.9 +keep pod IP +\(the source is outside/m);
  const text = await cli(['explain', '--config', config, '--source', '10.244.1.5', '198.51.100.7']);
  assert.match(text.stdout, /^198\.51\.100\.7 +SNAT to 203\.0\.113\.50 /m);
  assert.doesNotMatch(text.stdout, /note: masqueradeSourceCIDRs/);
  const noSource = await cli(['explain', '--config', config, '198.51.100.7']);
  assert.match(noSource.stdout, /^note: masqueradeSourceCIDRs is set; these answers are for a source inside it/m);
  const bad = await cli(['explain', '--config', config, '--source', 'nope', '198.51.100.7']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--source "nope" is not an IP address/);
});

test('validate: a conflict is an error naming both places; a redundant exception a warning; both backends accept the keys', async () => {
  const conflict = await tmp.write('conflict.yaml', 'nonMasqueradeCIDRs: [10.9.0.0/16]\nmasqueradeCIDRs: [10.9.0.0/16]\n');
  const r = await cli(['validate', conflict]);
  assert.equal(r.code, 1);
  assert.match(
    r.stdout,
    new RegExp(
      `${conflict}:2:19: error: masqueradeCIDRs\\[0\\]: 10\\.9\\.0\\.0/16 has two different actions: masquerade \\(${conflict}:2:19 masqueradeCIDRs\\[0\\]\\) and keep the pod IP \\(${conflict}:1:22 nonMasqueradeCIDRs\\[0\\]\\)`,
    ),
  );
  const redundant = await tmp.write('redundant.yaml', 'nonMasqueradeCIDRs: [10.0.0.0/8]\nmasqueradeCIDRs: [10.9.0.0/16, 10.9.1.0/24]\n');
  const w = await cli(['validate', redundant]);
  assert.equal(w.code, 0, w.stdout);
  assert.match(w.stdout, /2:32: warning: masqueradeCIDRs\[1\]: 10\.9\.1\.0\/24 .* masquerades, as the 10\.9\.0\.0\/16 it is nested in/);
  assert.match(w.stdout, /valid: 1 non-masquerade CIDR, 2 masquerade CIDRs \(cidrLimit 64\)/);
  const nft = await cli(['validate', '--backend', 'nftables', config]);
  assert.equal(nft.code, 0, nft.stdout);
  assert.doesNotMatch(nft.stdout, /does not support/);
  assert.equal((await cli(['validate', '--backend', 'iptables', config])).code, 0);
});
