import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COMMANDS_HELP, OPERATOR_COMMANDS, isOperatorCommand, runOperatorCommand } from '../../src/cli/index.js';
import { commandFlagSpecs, OUTPUT_FLAG } from '../../src/cli/command-shape.js';
import { parseFlags } from '../../src/cli/flags.js';
import { UsageError } from '../../src/errors.js';
import { cli } from './cli-helpers.js';

test('only the five command names are commands; flags and anything else go to the agent', () => {
  for (const c of ['validate', 'render', 'explain', 'status', 'cleanup']) assert.equal(isOperatorCommand(c), true, c);
  for (const w of [undefined, '', '--config=/x', '-v', 'help', 'Validate', 'run']) assert.equal(isOperatorCommand(w), false, String(w));
});

test("every command's --help exits 0 on stdout, with a usage line and an example", async () => {
  for (const c of OPERATOR_COMMANDS) {
    const r = await cli([c, '--help']);
    assert.equal(r.code, 0, c);
    assert.equal(r.stderr, '', c);
    assert.match(r.stdout, new RegExp(`^Usage: ip-masq-agent ${c} `), c);
    assert.match(r.stdout, new RegExp(`Examples:\\n(  .*\\n)*  .*ip-masq-agent ${c}`), c);
    assert.match(r.stdout, /Exit status: 0 /, c);
  }
  assert.match(COMMANDS_HELP, /^ {2}status {4}compare the live rules/m);
});

test('an error no command expected still ends with a message and a non-zero exit, not a stack on stdout', async () => {
  const io = { out: '', err: '' };
  const code = await runOperatorCommand(['cleanup'], { stdout: (s) => void (io.out += s), stderr: (s) => void (io.err += s) }, {
    runner: async () => {
      throw new TypeError('boom');
    },
    targets: () => [{ name: 'x', inspect: async () => ({ state: 'present', what: 'y' }), remove: async () => Promise.reject(new Error('no')) }],
  } as never);
  assert.equal(code, 1);
  assert.match(io.err, /cleanup: x: cannot remove y: no/);
});

test('flags may follow the arguments, as operators type them; "--" ends the flags', () => {
  const specs = commandFlagSpecs(['enable-ipv6'], [OUTPUT_FLAG]);
  const f = parseFlags(['10.1.2.3', '--output', 'json', '203.0.113.7', '-enable-ipv6', '--', '--not-a-flag'], specs, true);
  assert.deepEqual(f.positional, ['10.1.2.3', '203.0.113.7', '--not-a-flag']);
  assert.equal(f.values.get('output'), 'json');
  assert.equal(f.values.get('enable-ipv6'), 'true');
  assert.deepEqual([...f.set].sort(), ['enable-ipv6', 'output']);
  // The agent's other flags are accepted, so a DaemonSet's args can be pasted.
  const pasted = parseFlags(['--v=2', '--logtostderr', '--healthz-bind-address=0', 'x'], specs, true);
  assert.deepEqual(pasted.positional, ['x']);
  assert.throws(
    () => parseFlags(['x', '--outptu=json'], specs, true),
    (e: unknown) => e instanceof UsageError && /did you mean --output/.test(e.message),
  );
});
