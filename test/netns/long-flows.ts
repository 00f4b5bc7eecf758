// Long-lived flows through a pod -> node -> outside topology (test/netns/netns.ts): a UDP flow and
// a TCP connection that keep talking, for the tests of what a changed decision does to open flows.
import type { ChildProcess } from 'node:child_process';

// Outside: prints `udp ADDR` per datagram and `tcp ADDR` per TCP read (answering each), as seen.
export const SERVER_JS = `
const dgram = require('node:dgram'), net = require('node:net');
const say = (s) => process.stdout.write(s + '\\n');
dgram.createSocket('udp4').on('message', (m, r) => say('udp ' + r.address)).bind(9999);
dgram.createSocket('udp4').on('message', (m, r) => say('other ' + r.address)).bind(9997);
net.createServer((s) => {
  s.on('data', () => { say('tcp ' + s.remoteAddress.replace(/^::ffff:/, '')); s.write('ok\\n'); });
  s.on('error', () => {});
}).listen(9998, () => say('ready'));
`;

// Pod: a datagram every 100 ms from port 40000, one every 100 ms from port 40001 to an address no
// change touches (its entry must stay), a line every 200 ms on one TCP connection; prints each
// answer it gets and how the connection ends.
export const CLIENT_JS = `
const dgram = require('node:dgram'), net = require('node:net');
const host = process.argv[1];
const say = (s) => process.stdout.write(s + '\\n');
const u = dgram.createSocket('udp4');
u.bind(40000, () => setInterval(() => u.send('x', 9999, host), 100));
const o = dgram.createSocket('udp4');
o.bind(40001, () => setInterval(() => o.send('x', 9997, process.argv[2]), 100));
const s = net.connect(9998, host);
setInterval(() => s.writable && s.write('x\\n'), 200);
s.on('data', (d) => String(d).split('\\n').filter(Boolean).forEach(() => say('answer')));
s.on('error', (e) => say('tcp-error ' + e.code));
s.on('close', () => say('tcp-closed'));
`;

/** The lines a child printed so far, with a way to wait for one. */
export interface Lines {
  readonly all: string[];
  /** Resolves with the index of the first line at or after `from` that `pred` accepts. */
  waitFor(pred: (line: string) => boolean, from: number, ms?: number): Promise<number>;
}

/** Collects the lines `child` prints on stdout. */
export function collect(child: ChildProcess): Lines {
  const all: string[] = [];
  let rest = '';
  child.stdout?.on('data', (d: Buffer) => {
    const parts = (rest + d.toString()).split('\n');
    rest = parts.pop() ?? '';
    all.push(...parts);
  });
  return {
    all,
    async waitFor(pred, from, ms = 5000) {
      const end = Date.now() + ms;
      for (;;) {
        const i = all.findIndex((l, n) => n >= from && pred(l));
        if (i >= 0) return i;
        if (Date.now() > end) throw new Error(`no line after ${from} as wanted within ${ms} ms; lines: ${all.slice(from).join(' | ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}
