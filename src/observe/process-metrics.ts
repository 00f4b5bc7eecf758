// The process and Node.js metrics prom-client's collectDefaultMetrics exported, with the same names,
// help texts and labels, read at scrape time. An edge like the HTTP adapter: it reads `process` and
// /proc. Two differences, both to keep an idle agent idle (docs/deploy.md, "Exposing the metrics"):
// - the event-loop delay percentiles (nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds)
//   are gone: their sampler woke the process 100 times a second (0.3 s of CPU a minute);
//   nodejs_eventloop_lag_seconds stays, measured at each scrape;
// - the GC histogram and the heap-space gauges start at the first scrape, so an agent that nobody
//   scrapes does not load perf_hooks and v8 (about 2.4 MiB resident).
import { readFileSync, readdirSync } from 'node:fs';
import type { HeapSpaceInfo } from 'node:v8';
import { createHistogram, createReadMetric, createRegistry, type Registry, type Sample } from './prometheus.js';

/** Reads `VmRSS`, `VmSize` and `VmData` (kB) from /proc/self/status, in bytes; without /proc, the RSS alone. */
function readMemory(): (number | undefined)[] {
  try {
    const kB = new Map<string, number>();
    for (const line of readFileSync('/proc/self/status', 'utf8').split('\n')) {
      const m = /^(VmRSS|VmSize|VmData):\s+(\d+) kB/.exec(line);
      if (m?.[1] && m[2]) kB.set(m[1], Number(m[2]) * 1024);
    }
    return ['VmRSS', 'VmSize', 'VmData'].map((k) => kB.get(k) ?? 0);
  } catch {
    return [process.memoryUsage.rss()];
  }
}

/** `read()`, or undefined where it throws: off Linux, a value read from /proc stays as it was. */
function tryRead<T>(read: () => T): T | undefined {
  try {
    return read();
  } catch {
    return undefined;
  }
}

function readMaxFds(): number | undefined {
  const line = tryRead(() => readFileSync('/proc/self/limits', 'utf8'))
    ?.split('\n')
    .find((l) => l.startsWith('Max open files'));
  const n = Number(line?.split(/ {2,}/)[1]);
  return Number.isFinite(n) ? n : undefined;
}

/** Open descriptors, minus the one readdirSync itself used. */
const countOpenFds = (): number | undefined => tryRead(() => readdirSync('/proc/self/fd').length - 1);

/** How long a callback queued now waits for the event loop, in seconds. */
function measureLag(): Promise<number> {
  const started = process.hrtime.bigint();
  return new Promise((resolve) => setImmediate(() => resolve(Number(process.hrtime.bigint() - started) / 1e9)));
}

/** A gauge of `read()`'s names counted by name (label `type`), and `NAME_total` of them all. */
function registerCounts(registry: Registry, name: string, help: string, totalHelp: string, read: () => readonly string[]): void {
  let names: readonly string[] = [];
  const byType = (): Sample[] => {
    const counts = new Map<string, number>();
    for (const n of (names = read())) counts.set(n, (counts.get(n) ?? 0) + 1);
    return [...counts].map(([type, value]) => ({ labels: { type }, value }));
  };
  registry.register({ name, help, type: 'gauge', samples: byType });
  // Read side by side in registration order: the total is that of the names just counted.
  createReadMetric(registry, 'gauge', { name: `${name}_total`, help: totalHelp, read: () => names.length });
}

/** Node's undocumented handle and request lists, which prom-client counted by constructor name. */
type ActiveLists = { _getActiveHandles?: () => unknown[]; _getActiveRequests?: () => unknown[] };
const constructorNames = (list: readonly unknown[]): string[] =>
  list.flatMap((o) => {
    const name = (o as { constructor?: { name?: unknown } } | null)?.constructor?.name;
    return typeof name === 'string' ? [name] : [];
  });

/** The heap-space gauges by space; node:v8 is loaded at the first scrape. */
function registerHeapSpaces(registry: Registry): void {
  const kinds = { total: 'space_size', used: 'space_used_size', available: 'space_available_size' } as const;
  // Started in registration order: the first family's read serves all three in one scrape.
  let spaces: Promise<HeapSpaceInfo[]> = Promise.resolve([]);
  for (const [kind, key] of Object.entries(kinds)) {
    registry.register({
      name: `nodejs_heap_space_size_${kind}_bytes`,
      help: `Process heap space size ${kind} from Node.js in bytes.`,
      type: 'gauge',
      samples: async () => {
        if (kind === 'total') spaces = import('node:v8').then((v8) => v8.getHeapSpaceStatistics());
        return (await spaces).map((s) => ({ labels: { space: s.space_name.replace(/_space$/, '') }, value: s[key] }));
      },
    });
  }
}

/** The GC duration histogram; its PerformanceObserver starts at the first scrape. */
function registerGcHistogram(registry: Registry): void {
  // Made in a registry of its own, to be registered here with the observer's start in front of its samples.
  const gc = createHistogram(createRegistry(), {
    name: 'nodejs_gc_duration_seconds',
    help: 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    labelNames: ['kind'],
    buckets: [0.001, 0.01, 0.1, 1, 2, 5], // prom-client's default GC buckets
  });
  let observing = false;
  registry.register({
    ...gc,
    samples: async () => {
      if (!observing) {
        observing = true;
        const { PerformanceObserver, constants } = await import('node:perf_hooks');
        const kinds = new Map<number, string>([
          [constants.NODE_PERFORMANCE_GC_MAJOR, 'major'],
          [constants.NODE_PERFORMANCE_GC_MINOR, 'minor'],
          [constants.NODE_PERFORMANCE_GC_INCREMENTAL, 'incremental'],
          [constants.NODE_PERFORMANCE_GC_WEAKCB, 'weakcb'],
        ]);
        new PerformanceObserver((list) => {
          for (const entry of list.getEntries()) {
            const kind = kinds.get((entry as unknown as { detail?: { kind?: number } }).detail?.kind ?? -1);
            if (kind) gc.observe(entry.duration / 1000, { kind });
          }
        }).observe({ entryTypes: ['gc'] });
      }
      return gc.samples();
    },
  });
}

/** Unlabelled metrics read at each scrape: name, help, read (undefined keeps the last value). */
type Reads = readonly (readonly [name: string, help: string, read: () => number | undefined | Promise<number>])[];

/** Registers the process and Node.js metrics in `registry`, in prom-client's order. */
export function registerProcessMetrics(registry: Registry): void {
  // Families are read side by side in registration order: the first of a group reads for the rest.
  let cpu = process.cpuUsage();
  const counters: Reads = [
    ['process_cpu_user_seconds_total', 'Total user CPU time spent in seconds.', () => (cpu = process.cpuUsage()).user / 1e6],
    ['process_cpu_system_seconds_total', 'Total system CPU time spent in seconds.', () => cpu.system / 1e6],
    ['process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.', () => (cpu.user + cpu.system) / 1e6],
  ];
  for (const [name, help, read] of counters) createReadMetric(registry, 'counter', { name, help, read });
  const startTime = Math.round(Date.now() / 1000 - process.uptime());
  const maxFds = readMaxFds();
  let memory: (number | undefined)[] = [];
  const gauges: Reads = [
    ['process_start_time_seconds', 'Start time of the process since unix epoch in seconds.', () => startTime],
    ['process_resident_memory_bytes', 'Resident memory size in bytes.', () => (memory = readMemory())[0]],
    ['process_virtual_memory_bytes', 'Virtual memory size in bytes.', () => memory[1]],
    ['process_heap_bytes', 'Process heap size in bytes.', () => memory[2]],
    ['process_open_fds', 'Number of open file descriptors.', countOpenFds],
    ...(maxFds === undefined ? [] : [['process_max_fds', 'Maximum number of open file descriptors.', () => maxFds] as const]),
    ['nodejs_eventloop_lag_seconds', 'Lag of event loop in seconds.', measureLag],
  ];
  for (const [name, help, read] of gauges) createReadMetric(registry, 'gauge', { name, help, read });

  const lists = process as unknown as ActiveLists;
  const resourcesHelp = 'Number of active resources that are currently keeping the event loop alive, grouped by async resource type.';
  registerCounts(registry, 'nodejs_active_resources', resourcesHelp, 'Total number of active resources.', () => process.getActiveResourcesInfo());
  const handlesHelp = 'Number of active libuv handles grouped by handle type. Every handle type is C++ class name.';
  registerCounts(registry, 'nodejs_active_handles', handlesHelp, 'Total number of active handles.', () => constructorNames(lists._getActiveHandles?.() ?? []));
  const requestsHelp = 'Number of active libuv requests grouped by request type. Every request type is C++ class name.';
  registerCounts(registry, 'nodejs_active_requests', requestsHelp, 'Total number of active requests.', () => constructorNames(lists._getActiveRequests?.() ?? []));

  let heap = process.memoryUsage();
  const heapGauges: Reads = [
    ['nodejs_heap_size_total_bytes', 'Process heap size from Node.js in bytes.', () => (heap = process.memoryUsage()).heapTotal],
    ['nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.', () => heap.heapUsed],
    ['nodejs_external_memory_bytes', 'Node.js external memory size in bytes.', () => heap.external],
  ];
  for (const [name, help, read] of heapGauges) createReadMetric(registry, 'gauge', { name, help, read });
  registerHeapSpaces(registry);
  const [major = '', minor = '', patch = ''] = process.version.slice(1).split('.');
  const version = { version: process.version, major, minor, patch };
  registry.register({ name: 'nodejs_version_info', help: 'Node.js version info.', type: 'gauge', samples: () => [{ labels: version, value: 1 }] });
  registerGcHistogram(registry);
}
