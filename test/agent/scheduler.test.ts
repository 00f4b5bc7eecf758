import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createScheduler, retryDelayMs, type Retry } from '../../src/agent/scheduler.js';
import { createFakeClock } from './fake-clock.js';

/** A scheduler over a run the test controls: each run records its reason, fails while `failing`, and ends when the test says. */
function harness(opts: Partial<Parameters<typeof createScheduler<string>>[0]> = {}) {
  const clock = createFakeClock();
  const runs: string[] = [];
  const retries: (Retry | undefined)[] = [];
  const delays: number[] = [];
  let failing = false;
  let interval = 60_000;
  let gate: Promise<void> | undefined;
  const scheduler = createScheduler<string>({
    clock: { now: clock.now, setTimer: (ms, fn) => (delays.push(ms), clock.setTimer(ms, fn)) },
    run: async (reason, settle) => {
      runs.push(reason);
      await gate;
      retries.push(settle(failing));
      return reason;
    },
    intervalMs: () => interval,
    ...opts,
  });
  /** Lets every pending promise settle. */
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  };
  return {
    scheduler,
    clock,
    runs,
    retries,
    delays,
    settle,
    fail: (f: boolean) => void (failing = f),
    setInterval: (ms: number) => void (interval = ms),
    /** Holds every run until the returned function is called. */
    hold: () => {
      let open!: () => void;
      gate = new Promise((r) => (open = r));
      return () => {
        gate = undefined;
        open();
      };
    },
  };
}

test('start runs at once, then at the interval, which is asked anew after every run', async () => {
  const h = harness();
  assert.equal(await h.scheduler.start(), 'start');
  assert.deepEqual(h.delays, [60_000]);
  h.setInterval(30_000);
  h.clock.advance(59_999);
  await h.settle();
  assert.deepEqual(h.runs, ['start']);
  h.clock.advance(1);
  await h.settle();
  assert.deepEqual(h.runs, ['start', 'resync']);
  assert.deepEqual(h.delays, [60_000, 30_000]);
  await h.scheduler.stop();
  assert.equal(h.clock.pending(), 0);
});

test('triggers during a run fold into one run after it, with the first reason, and all callers get its result', async () => {
  const h = harness();
  const release = h.hold();
  const first = h.scheduler.sync('a');
  const later = ['b', 'c', 'd'].map((r) => h.scheduler.sync(r));
  await h.settle();
  assert.deepEqual(h.runs, ['a'], 'one run at a time');
  release();
  assert.equal(await first, 'a');
  assert.deepEqual(await Promise.all(later), ['b', 'b', 'b']);
  assert.deepEqual(h.runs, ['a', 'b']);
  assert.equal(h.clock.pending(), 0, 'not started: no timer');
});

test('a failed run is retried after 1 s, 2 s, 4 s, ... capped at the interval; a success goes back to the interval', async () => {
  const h = harness();
  h.setInterval(10_000);
  h.fail(true);
  await h.scheduler.start();
  for (let i = 0; i < 5; i++) {
    h.clock.advance(h.delays.at(-1)!);
    await h.settle();
  }
  assert.deepEqual(h.delays, [1000, 2000, 4000, 8000, 10_000, 10_000]);
  assert.deepEqual(h.runs, ['start', 'retry', 'retry', 'retry', 'retry', 'retry']);
  assert.deepEqual(h.retries.at(-1), { afterMs: 10_000, failures: 6 }, 'the run learns the retry it gets');
  h.fail(false);
  h.clock.advance(10_000);
  await h.settle();
  assert.equal(h.retries.at(-1), undefined);
  assert.equal(h.delays.at(-1), 10_000);
  h.fail(true);
  h.clock.advance(10_000);
  await h.settle();
  assert.deepEqual(h.runs.slice(-2), ['retry', 'resync']);
  assert.equal(h.delays.at(-1), 1000, 'the backoff starts again');
  await h.scheduler.stop();
});

test('stop waits for the running run and leaves no timer; a trigger after it runs without arming one', async () => {
  const h = harness();
  const release = h.hold();
  const started = h.scheduler.start();
  let stopped = false;
  const stopping = h.scheduler.stop().then(() => void (stopped = true));
  await h.settle();
  assert.equal(stopped, false, 'stop waits for the run');
  release();
  await stopping;
  await started;
  assert.equal(h.clock.pending(), 0);
  await h.scheduler.sync('SIGHUP');
  assert.equal(h.clock.pending(), 0);
});

test('the retry delay never exceeds a short resync interval', () => {
  assert.deepEqual(
    [1, 2, 3, 4].map((n) => retryDelayMs(n, 2500)),
    [1000, 2000, 2500, 2500],
  );
  assert.equal(retryDelayMs(1, 100), 100);
  assert.equal(retryDelayMs(5000, 86_400_000), 86_400_000);
});
