// The config watcher with a fake fs.watch and a fake clock: which directory events start a
// sync, the debounce, and re-arming the watch after entries are created, deleted or moved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { FSWatcher, WatchEventType, WatchListener } from 'node:fs';
import { isRelevantConfigEvent, WATCH_DEBOUNCE_MS, watchConfig, type WatchFn } from '../../src/agent/watch.js';
import { createMemoryLogger } from '../observe/memory-logger.js';
import { createFakeClock } from './fake-clock.js';

/** A fake fs.watch: records every watch opened; `emit` delivers an event to the live one. */
function fakeWatch() {
  const opened: { dir: string; closed: boolean; listener: WatchListener<string> }[] = [];
  const watch: WatchFn = (dir, _options, listener) => {
    const entry = { dir, closed: false, listener };
    opened.push(entry);
    const w = new EventEmitter() as unknown as FSWatcher;
    (w as unknown as { close: () => void }).close = () => void (entry.closed = true);
    return w;
  };
  const live = () => opened.filter((o) => !o.closed);
  return {
    watch,
    opened,
    live,
    emit(type: WatchEventType, filename: string | null) {
      const [w] = live();
      assert.ok(w, 'a live watch');
      w.listener(type, filename);
    },
  };
}

function setup(path: string, directoryMode: boolean) {
  const fw = fakeWatch();
  const clock = createFakeClock();
  let syncs = 0;
  const stop = watchConfig({ path, isDirectory: () => directoryMode, onChange: () => void syncs++, clock, log: createMemoryLogger(), watch: fw.watch });
  return { fw, clock, stop, syncs: () => syncs };
}

const FILE_MODE: [WatchEventType, string | null, boolean][] = [
  ['change', 'ip-masq-agent', true],
  ['rename', 'ip-masq-agent', true],
  ['rename', '..data', true],
  ['rename', '..data_tmp', true],
  ['rename', '..2026_11_26_10_00_01.000000001', true],
  ['change', null, true],
  ['rename', 'config', true], // the watched directory /etc/config itself (deleted or moved)
  ['change', 'other-key', false],
  ['rename', 'other-key', false],
  ['change', 'app.log', false],
  ['change', 'ip-masq-agent.swp', false],
  ['change', 'ip-masq-agent-extra', false], // file mode reads only the named file
  ['change', '..hidden', false],
  ['change', '...data', false],
];
for (const [type, name, relevant] of FILE_MODE) {
  test(`file mode (--config=/etc/config/ip-masq-agent): ${type} ${JSON.stringify(name)} ${relevant ? 'syncs' : 'is ignored'}`, () => {
    assert.equal(isRelevantConfigEvent(name, '/etc/config', '/etc/config/ip-masq-agent', false), relevant);
    const s = setup('/etc/config/ip-masq-agent', false);
    s.fw.emit(type, name);
    s.clock.advance(50);
    assert.equal(s.syncs(), relevant ? 1 : 0);
    s.stop();
  });
}

const DIR_MODE: [string | null, boolean][] = [
  ['ip-masq-agent', true],
  ['ip-masq-extra', true],
  ['ip-masq', true],
  ['..data', true],
  ['..data_tmp', true],
  ['..2026_11_26_10_00_01.000000001', true],
  [null, true],
  ['masq.d', true], // the watched directory itself
  ['.ip-masq-agent.swp', false],
  ['other', false],
  ['README', false],
];
for (const [name, relevant] of DIR_MODE) {
  test(`directory mode (--config=/etc/masq.d): change ${JSON.stringify(name)} ${relevant ? 'syncs' : 'is ignored'}`, () => {
    assert.equal(isRelevantConfigEvent(name, '/etc/masq.d', '/etc/masq.d', true), relevant);
    const s = setup('/etc/masq.d', true);
    s.fw.emit('change', name);
    s.clock.advance(50);
    assert.equal(s.syncs(), relevant ? 1 : 0);
    s.stop();
  });
}

test('1,000 writes to an unrelated file start no sync and keep the same watch', () => {
  const s = setup('/etc/config/ip-masq-agent', false);
  for (let i = 0; i < 1000; i++) {
    s.fw.emit('change', 'app.log');
    s.clock.advance(10);
  }
  s.clock.advance(1000);
  assert.equal(s.syncs(), 0);
  assert.equal(s.fw.opened.length, 1);
  s.stop();
});

test('a kubelet swap (a burst of relevant events) is one sync after the debounce', () => {
  const s = setup('/etc/config/ip-masq-agent', false);
  for (const name of ['..2026_11_26_10_00_02.000000002', '..data_tmp', '..data', '..data_tmp', '..2026_11_26_10_00_01.000000001']) {
    s.fw.emit('rename', name);
    s.clock.advance(5);
  }
  assert.equal(s.syncs(), 0);
  s.clock.advance(50);
  assert.equal(s.syncs(), 1);
  s.stop();
});

test('the watch is re-armed after every relevant event and after an unrelated entry is created or deleted', () => {
  const s = setup('/etc/config/ip-masq-agent', false);
  s.fw.emit('change', 'ip-masq-agent');
  assert.equal(s.fw.opened.length, 2);
  // An unrelated entry removed: could be the start of the directory going away, so watch anew.
  s.fw.emit('rename', 'other-key');
  assert.equal(s.fw.opened.length, 3);
  // The directory itself deleted or moved: a sync, and a new watch.
  s.fw.emit('rename', 'config');
  assert.equal(s.fw.opened.length, 4);
  assert.equal(s.fw.live().length, 1, 'old watches are closed');
  assert.equal(s.fw.live()[0]!.dir, '/etc/config');
  s.clock.advance(50);
  assert.equal(s.syncs(), 1);
  s.stop();
  assert.equal(s.fw.live().length, 0);
});

test('by default a kubelet swap syncs within WATCH_DEBOUNCE_MS (10 ms) of its last event, still once', () => {
  const fw = fakeWatch();
  const clock = createFakeClock();
  let syncs = 0;
  const stop = watchConfig({ path: '/etc/config/ip-masq-agent', isDirectory: () => false, onChange: () => void syncs++, clock, log: createMemoryLogger(), watch: fw.watch });
  // kubelet's atomic writer: the whole burst within a millisecond.
  for (const name of ['..2026_11_26_10_00_02.000000002', '..data_tmp', '..data_tmp', '..data', '..2026_11_26_10_00_01.000000001']) fw.emit('rename', name);
  assert.equal(WATCH_DEBOUNCE_MS, 10);
  clock.advance(9);
  assert.equal(syncs, 0);
  clock.advance(1);
  assert.equal(syncs, 1);
  clock.advance(1000);
  assert.equal(syncs, 1);
  stop();
});
