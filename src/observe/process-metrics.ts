// The process and Node.js metrics prom-client's collectDefaultMetrics exported, with the same names,
// help texts and labels, read at scrape time. An edge like the HTTP adapter: it reads `process` and
// /proc. Two differences, both to keep an idle agent idle (docs/deploy.md, "Exposing the metrics"):
// - the event-loop delay percentiles (nodejs_eventloop_lag_{min,max,mean,stddev,p50,p90,p99}_seconds)
//   are gone: their sampler woke the process 100 times a second (0.3 s of CPU a minute);
//   nodejs_eventloop_lag_seconds stays, measured at each scrape;
// - the GC histogram and the heap-space gauges start at the first scrape, so an agent that nobody
//   scrapes does not load perf_hooks and v8 (about 2.4 MiB resident).
import { readFileSync, readdirSync } from 'node:fs';
import { createCounter, createGauge, createHistogram, type Registry, type ValueMetric } from './prometheus.js';

/** prom-client's default GC buckets. */
const GC_BUCKETS: readonly number[] = [0.001, 0.01, 0.1, 1, 2, 5];

/** Reads `VmRSS`, `VmSize` and `VmData` (kB) from /proc/self/status, in bytes. */
function readProcStatus(): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of readFileSync('/proc/self/status', 'utf8').split('\n')) {
    const m = /^(VmRSS|VmSize|VmData):\s+(\d+) kB/.exec(line);
    if (m?.[1] && m[2]) out.set(m[1], Number(m[2]) * 1024);
  }
  return out;
}

function readMaxFds(): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const n = Number(line?.split(/ {2,}/)[1]);
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

function countBy(names: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  return counts;
}

function setCounts(gauge: ValueMetric, total: ValueMetric, names: readonly string[]): void {
  gauge.reset();
  for (const [type, n] of countBy(names)) gauge.set({ type }, n);
  total.set({}, names.length);
}

/** Node's undocumented handle and request lists, which prom-client counted by constructor name. */
type ActiveLists = { _getActiveHandles?: () => unknown[]; _getActiveRequests?: () => unknown[] };
const constructorNames = (list: readonly unknown[]): string[] =>
  list.flatMap((o) => {
    const name = (o as { constructor?: { name?: unknown } } | null)?.constructor?.name;
    return typeof name === 'string' ? [name] : [];
  });

/** Registers the process and Node.js metrics in `registry`. */
export function registerProcessMetrics(registry: Registry): void {
  const cpu = (): NodeJS.CpuUsage => process.cpuUsage();
  const cpuUser = createCounter(registry, { name: 'process_cpu_user_seconds_total', help: 'Total user CPU time spent in seconds.', collect: () => cpuUser.set({}, cpu().user / 1e6) });
  const cpuSystem = createCounter(registry, { name: 'process_cpu_system_seconds_total', help: 'Total system CPU time spent in seconds.', collect: () => cpuSystem.set({}, cpu().system / 1e6) });
  const cpuTotal = createCounter(registry, {
    name: 'process_cpu_seconds_total',
    help: 'Total user and system CPU time spent in seconds.',
    collect: () => {
      const c = cpu();
      cpuTotal.set({}, (c.user + c.system) / 1e6);
    },
  });
  const startTime = Math.round(Date.now() / 1000 - process.uptime());
  const start = createGauge(registry, { name: 'process_start_time_seconds', help: 'Start time of the process since unix epoch in seconds.', collect: () => start.set({}, startTime) });

  const resident = createGauge(registry, {
    name: 'process_resident_memory_bytes',
    help: 'Resident memory size in bytes.',
    collect: () => {
      try {
        const s = readProcStatus();
        resident.set({}, s.get('VmRSS') ?? 0);
        virtual.set({}, s.get('VmSize') ?? 0);
        heap.set({}, s.get('VmData') ?? 0);
      } catch {
        resident.set({}, process.memoryUsage.rss());
      }
    },
  });
  const virtual = createGauge(registry, { name: 'process_virtual_memory_bytes', help: 'Virtual memory size in bytes.' });
  const heap = createGauge(registry, { name: 'process_heap_bytes', help: 'Process heap size in bytes.' });
  const openFds = createGauge(registry, {
    name: 'process_open_fds',
    help: 'Number of open file descriptors.',
    collect: () => {
      try {
        // Minus the descriptor readdirSync itself used.
        openFds.set({}, readdirSync('/proc/self/fd').length - 1);
      } catch {
        // Not on Linux: the value stays.
      }
    },
  });
  const maxFds = readMaxFds();
  if (maxFds !== undefined) {
    const g = createGauge(registry, { name: 'process_max_fds', help: 'Maximum number of open file descriptors.', collect: () => g.set({}, maxFds) });
  }

  const lag = createGauge(registry, {
    name: 'nodejs_eventloop_lag_seconds',
    help: 'Lag of event loop in seconds.',
    collect: () =>
      new Promise<void>((resolve) => {
        const started = process.hrtime.bigint();
        setImmediate(() => {
          lag.set({}, Number(process.hrtime.bigint() - started) / 1e9);
          resolve();
        });
      }),
  });

  const resources = createGauge(registry, {
    name: 'nodejs_active_resources',
    help: 'Number of active resources that are currently keeping the event loop alive, grouped by async resource type.',
    labelNames: ['type'],
    collect: () => setCounts(resources, resourcesTotal, process.getActiveResourcesInfo()),
  });
  const resourcesTotal = createGauge(registry, { name: 'nodejs_active_resources_total', help: 'Total number of active resources.' });
  const lists = process as unknown as ActiveLists;
  const handles = createGauge(registry, {
    name: 'nodejs_active_handles',
    help: 'Number of active libuv handles grouped by handle type. Every handle type is C++ class name.',
    labelNames: ['type'],
    collect: () => setCounts(handles, handlesTotal, constructorNames(lists._getActiveHandles?.() ?? [])),
  });
  const handlesTotal = createGauge(registry, { name: 'nodejs_active_handles_total', help: 'Total number of active handles.' });
  const requests = createGauge(registry, {
    name: 'nodejs_active_requests',
    help: 'Number of active libuv requests grouped by request type. Every request type is C++ class name.',
    labelNames: ['type'],
    collect: () => setCounts(requests, requestsTotal, constructorNames(lists._getActiveRequests?.() ?? [])),
  });
  const requestsTotal = createGauge(registry, { name: 'nodejs_active_requests_total', help: 'Total number of active requests.' });

  const heapTotal = createGauge(registry, {
    name: 'nodejs_heap_size_total_bytes',
    help: 'Process heap size from Node.js in bytes.',
    collect: () => {
      const m = process.memoryUsage();
      heapTotal.set({}, m.heapTotal);
      heapUsed.set({}, m.heapUsed);
      external.set({}, m.external);
    },
  });
  const heapUsed = createGauge(registry, { name: 'nodejs_heap_size_used_bytes', help: 'Process heap size used from Node.js in bytes.' });
  const external = createGauge(registry, { name: 'nodejs_external_memory_bytes', help: 'Node.js external memory size in bytes.' });

  const spaceGauge = (kind: 'total' | 'used' | 'available', collect?: () => Promise<void>): ValueMetric =>
    createGauge(registry, {
      name: `nodejs_heap_space_size_${kind}_bytes`,
      help: `Process heap space size ${kind} from Node.js in bytes.`,
      labelNames: ['space'],
      ...(collect ? { collect } : {}),
    });
  const spaces = {
    total: spaceGauge('total', async () => {
      const { getHeapSpaceStatistics } = await import('node:v8');
      for (const s of getHeapSpaceStatistics()) {
        const space = s.space_name.replace(/_space$/, '');
        spaces.total.set({ space }, s.space_size);
        spaces.used.set({ space }, s.space_used_size);
        spaces.available.set({ space }, s.space_available_size);
      }
    }),
    used: spaceGauge('used'),
    available: spaceGauge('available'),
  };

  const [major = '', minor = '', patch = ''] = process.version.slice(1).split('.');
  createGauge(registry, { name: 'nodejs_version_info', help: 'Node.js version info.', labelNames: ['version', 'major', 'minor', 'patch'] }).set({ version: process.version, major, minor, patch }, 1);

  let observing = false;
  const gc = createHistogram(registry, {
    name: 'nodejs_gc_duration_seconds',
    help: 'Garbage collection duration by kind, one of major, minor, incremental or weakcb.',
    labelNames: ['kind'],
    buckets: GC_BUCKETS,
    collect: async () => {
      if (observing) return;
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
    },
  });
}
