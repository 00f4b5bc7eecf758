import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import type { AgentStatus } from '../../src/observe/agent-status.js';
import { UsageError } from '../../src/errors.js';
import { createMemoryLogger } from '../observe/memory-logger.js';
import { createMetrics } from '../../src/observe/metrics.js';
import { requestPath, startHttpServer } from '../../src/server/http.js';
import { healthRoutes, metricsRoutes } from '../../src/server/routes.js';
import { createFakeClock } from '../agent/fake-clock.js';
import { makeStatus, okFamily } from '../observe/status-fixture.js';

/** One request over a fresh connection; returns status, headers and body. */
function send(url: string, method = 'GET'): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function setup() {
  const clock = createFakeClock();
  const log = createMemoryLogger();
  let status: AgentStatus = makeStatus();
  const metrics = createMetrics();
  const getStatus = () => status;
  return {
    clock,
    log,
    set: (s: AgentStatus) => void (status = s),
    routes: { ...healthRoutes(getStatus, clock), ...metricsRoutes(metrics, getStatus) },
  };
}

test('http: serves /healthz, /readyz and /metrics on 127.0.0.1, port 0', async () => {
  const s = setup();
  const server = await startHttpServer({ bindAddress: '127.0.0.1:0', flag: '--healthz-bind-address', routes: s.routes, log: s.log });
  assert.ok(server);
  try {
    assert.equal(server.address, '127.0.0.1');
    assert.ok(server.port > 0);
    assert.equal(server.url, `http://127.0.0.1:${server.port}`);
    assert.ok(s.log.entries.some((e) => e.level === 'info' && e.msg.includes(server.url)));

    assert.equal((await send(`${server.url}/healthz`)).status, 200);
    const unready = await send(`${server.url}/readyz`);
    assert.equal(unready.status, 503);
    assert.equal(unready.headers['content-type'], 'application/json; charset=utf-8');
    assert.deepEqual((JSON.parse(unready.body) as { readyReasons: string[] }).readyReasons, ['no sync has run yet']);

    s.set(makeStatus({ ipv4: okFamily(s.clock.now(), 4) }));
    const ready = await send(`${server.url}/readyz?verbose`);
    assert.equal(ready.status, 200);
    assert.equal((JSON.parse(ready.body) as { ready: boolean }).ready, true);

    const m = await send(`${server.url}/metrics`);
    assert.equal(m.status, 200);
    assert.match(String(m.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(m.body, /^ip_masq_agent_rules\{family="ipv4"\} 4$/m);
    assert.match(m.body, /^process_cpu_user_seconds_total /m);
  } finally {
    await server.close();
  }
});

test('http: 404 for other paths, 405 for other methods, HEAD without a body', async () => {
  const s = setup();
  const server = await startHttpServer({ bindAddress: '127.0.0.1:0', flag: '--healthz-bind-address', routes: s.routes, log: s.log });
  assert.ok(server);
  try {
    const missing = await send(`${server.url}/nope`);
    assert.equal(missing.status, 404);
    assert.equal((await send(`${server.url}/`)).status, 404);
    const post = await send(`${server.url}/healthz`, 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers['allow'], 'GET, HEAD');
    assert.equal((await send(`${server.url}/metrics`, 'DELETE')).status, 405);
    const head = await send(`${server.url}/healthz`, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.ok(Number(head.headers['content-length']) > 0);
  } finally {
    await server.close();
  }
});

/** GET with `target` as the request line's target (e.g. the absolute form), to the server at `port`. */
function sendTarget(port: number, target: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: target, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('http: the absolute form of the request target (http://host:port/path, RFC 9112 3.2.2) is served as its path', async () => {
  const s = setup();
  const server = await startHttpServer({ bindAddress: '127.0.0.1:0', flag: '--healthz-bind-address', routes: s.routes, log: s.log });
  assert.ok(server);
  try {
    const health = await sendTarget(server.port, `${server.url}/healthz`);
    assert.equal(health.status, 200, health.body);
    assert.equal((JSON.parse(health.body) as { healthy: boolean }).healthy, true);
    assert.equal((await sendTarget(server.port, `HTTP://localhost:${server.port}/metrics?name[]=x`)).status, 200);
    assert.equal((await sendTarget(server.port, `${server.url}/nope`)).status, 404);
    assert.equal((await sendTarget(server.port, server.url)).status, 404, 'no path is /');
  } finally {
    await server.close();
  }
});

test('http: requestPath takes the path of either form of request target', () => {
  const cases: [string, string][] = [
    ['/healthz', '/healthz'],
    ['/healthz?verbose', '/healthz'],
    ['http://127.0.0.1:10264/healthz', '/healthz'],
    ['https://[::1]:10264/readyz?x=1', '/readyz'],
    ['http://node.example:10264', '/'],
    ['http://node.example:10264?x', '/'],
    ['/http://x/healthz', '/http://x/healthz'],
    ['ftp://x/healthz', 'ftp://x/healthz'],
  ];
  for (const [target, path] of cases) assert.equal(requestPath(target), path, target);
});

test('http: a route that throws answers 500 and is logged; the server keeps serving', async () => {
  const log = createMemoryLogger();
  const server = await startHttpServer({
    bindAddress: '127.0.0.1:0',
    flag: '--metrics-bind-address',
    log,
    routes: {
      '/boom': () => Promise.reject(new Error('collector failed')),
      '/ok': () => Promise.resolve({ status: 200, contentType: 'text/plain', body: 'ok' }),
    },
  });
  assert.ok(server);
  try {
    const r = await send(`${server.url}/boom`);
    assert.equal(r.status, 500);
    assert.match(r.body, /collector failed/);
    assert.ok(log.entries.some((e) => e.level === 'error' && e.fields['error'] === 'collector failed'));
    assert.equal((await send(`${server.url}/ok`)).body, 'ok');
  } finally {
    await server.close();
  }
});

for (const bindAddress of ['', '0']) {
  test(`http: bind address "${bindAddress}" disables the server and says so`, async () => {
    const log = createMemoryLogger();
    const server = await startHttpServer({ bindAddress, flag: '--metrics-bind-address', routes: setup().routes, log });
    assert.equal(server, undefined);
    assert.ok(log.entries.some((e) => e.level === 'info' && e.msg.includes('disabled') && e.msg.includes('--metrics-bind-address')));
  });
}

test('http: an address in use is reported naming the flag and the address', async () => {
  const s = setup();
  const first = await startHttpServer({ bindAddress: '127.0.0.1:0', flag: '--healthz-bind-address', routes: s.routes, log: s.log });
  assert.ok(first);
  try {
    const taken = `127.0.0.1:${first.port}`;
    await assert.rejects(
      startHttpServer({ bindAddress: taken, flag: '--metrics-bind-address', routes: s.routes, log: s.log }),
      (e: unknown) => e instanceof Error && e.message.startsWith(`--metrics-bind-address=${taken}: address already in use`) && e.message.includes('--metrics-bind-address=0 to disable'),
    );
  } finally {
    await first.close();
  }
});

test('http: an unparsable address is a usage error naming the flag', async () => {
  const s = setup();
  await assert.rejects(
    startHttpServer({ bindAddress: '127.0.0.1', flag: '--healthz-bind-address', routes: s.routes, log: s.log }),
    (e: unknown) => e instanceof UsageError && e.message.startsWith('--healthz-bind-address: "127.0.0.1" has no port'),
  );
});

test('http: close() returns while a keep-alive connection is open', async () => {
  const s = setup();
  const server = await startHttpServer({ bindAddress: '127.0.0.1:0', flag: '--healthz-bind-address', routes: s.routes, log: s.log });
  assert.ok(server);
  // fetch keeps its connection alive; close must not wait for it to time out.
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
  await server.close();
  await assert.rejects(send(`${server.url}/healthz`), /ECONNREFUSED/);
});

// The timeout only keeps a regression (close() waiting forever) from stalling the suite.
test('http: close() returns while a request hangs in its handler, dropping that request', { timeout: 10_000 }, async () => {
  let entered: () => void = () => undefined;
  const inHandler = new Promise<void>((resolve) => (entered = resolve));
  const server = await startHttpServer({
    bindAddress: '127.0.0.1:0',
    flag: '--metrics-bind-address',
    log: createMemoryLogger(),
    routes: {
      '/hang': () => {
        entered();
        return new Promise(() => undefined);
      },
    },
  });
  assert.ok(server);
  const pending = send(`${server.url}/hang`);
  await inHandler;
  await server.close();
  await assert.rejects(pending, /socket hang up|ECONNRESET/);
});

/** Opens a TCP connection and resolves once connected; `closed` settles when the server ends it. */
function openIdle(port: number): Promise<{ socket: Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('error', () => undefined); // a reset by the server is what some tests expect
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

test('http: connections past maxConnections are closed at once (and logged once); the server answers again when they end', { timeout: 20_000 }, async () => {
  const s = setup();
  const server = await startHttpServer({ bindAddress: '127.0.0.1:0', flag: '--healthz-bind-address', routes: s.routes, log: s.log, limits: { maxConnections: 3 } });
  assert.ok(server);
  const held = await Promise.all([1, 2, 3].map(() => openIdle(server.port)));
  try {
    const extra = await Promise.all([1, 2].map(() => openIdle(server.port)));
    await Promise.all(extra.map((c) => c.closed)); // closed by the server, not by us
    assert.equal(s.log.entries.filter((e) => /connection limit reached/.test(e.msg)).length, 1);
    for (const c of held) c.socket.destroy();
    await Promise.all(held.map((c) => c.closed));
    assert.equal((await send(`${server.url}/healthz`)).status, 200);
  } finally {
    for (const c of held) c.socket.destroy();
    await server.close();
  }
});

test('http: an idle connection that never sends a request is closed by the server', { timeout: 20_000 }, async () => {
  const s = setup();
  const server = await startHttpServer({
    bindAddress: '127.0.0.1:0',
    flag: '--healthz-bind-address',
    routes: s.routes,
    log: s.log,
    limits: { idleTimeoutMs: 200, headersTimeoutMs: 300, requestTimeoutMs: 400 },
  });
  assert.ok(server);
  try {
    const silent = await openIdle(server.port);
    await silent.closed;
    // Half a request line, then nothing: the header timeout ends it too.
    const slow = await openIdle(server.port);
    slow.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    await slow.closed;
  } finally {
    await server.close();
  }
});

test('http: a request with a body is refused with 413, other methods with 405, and the connection is closed', async () => {
  const s = setup();
  const server = await startHttpServer({ bindAddress: '127.0.0.1:0', flag: '--healthz-bind-address', routes: s.routes, log: s.log });
  assert.ok(server);
  try {
    const withBody = await new Promise<{ status: number; connection: string | undefined }>((resolve, reject) => {
      const req = request(`${server.url}/healthz`, { method: 'GET', agent: false, headers: { 'Content-Length': '1000000' } }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, connection: res.headers.connection });
      });
      req.on('error', reject);
      req.write('x'.repeat(1000));
    });
    assert.deepEqual(withBody, { status: 413, connection: 'close' });
    const post = await send(`${server.url}/healthz`, 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers['connection'], 'close');
    const huge = await new Promise<number>((resolve, reject) => {
      const req = request(`${server.url}/healthz`, { agent: false, headers: { 'X-Big': 'y'.repeat(20_000) } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(huge, 431);
  } finally {
    await server.close();
  }
});
