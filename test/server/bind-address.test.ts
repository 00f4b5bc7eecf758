import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../src/errors.js';
import { formatHostPort, parseBindAddress } from '../../src/server/bind-address.js';

const FLAG = '--healthz-bind-address';

const GOOD: readonly [string, { host?: string; port: number } | undefined][] = [
  ['', undefined],
  ['0', undefined],
  ['  ', undefined],
  ['127.0.0.1:10264', { host: '127.0.0.1', port: 10264 }],
  ['0.0.0.0:10256', { host: '0.0.0.0', port: 10256 }],
  ['[::1]:10265', { host: '::1', port: 10265 }],
  ['[::]:10265', { host: '::', port: 10265 }],
  ['[2001:db8::1]:80', { host: '2001:db8::1', port: 80 }],
  [':10264', { port: 10264 }],
  ['localhost:10264', { host: 'localhost', port: 10264 }],
  ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
  ['127.0.0.1:65535', { host: '127.0.0.1', port: 65535 }],
];

for (const [text, want] of GOOD) {
  test(`bind address "${text}" parses`, () => {
    assert.deepEqual(parseBindAddress(text, FLAG), want);
  });
}

const BAD: readonly [string, string][] = [
  ['127.0.0.1', 'has no port'],
  ['10264', 'has no port'],
  ['::1:10264', 'IPv6 address without brackets'],
  ['[127.0.0.1]:10264', 'not an IPv6 address'],
  ['[::1]', 'has no port'],
  ['127.0.0.1:65536', 'not a port'],
  ['127.0.0.1:http', 'not a port'],
  ['127.0.0.1:', 'not a port'],
  ['127.0.0.1:-1', 'not a port'],
  ['256.1.1.1:80', 'neither an IP address nor a host name'],
  ['my host:80', 'neither an IP address nor a host name'],
];

for (const [text, why] of BAD) {
  test(`bind address "${text}" is refused, naming the flag`, () => {
    assert.throws(
      () => parseBindAddress(text, FLAG),
      (e: unknown) => e instanceof UsageError && e.message.startsWith(`${FLAG}: "${text}"`) && e.message.includes(why),
    );
  });
}

test('formatHostPort brackets IPv6 only', () => {
  assert.equal(formatHostPort('127.0.0.1', 1), '127.0.0.1:1');
  assert.equal(formatHostPort('::1', 1), '[::1]:1');
});
