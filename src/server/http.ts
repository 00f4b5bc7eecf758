import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorMessage } from '../errors.js';
import { coalesceNotes } from '../observe/coalesce-notes.js';
import type { Logger } from '../observe/log.js';
import { formatHostPort, parseBindAddress } from './bind-address.js';
import type { Routes } from './routes.js';

/**
 * The bounds on what clients may hold (docs/deploy.md, "Exposing the metrics"): the endpoints serve
 * probes and one scraper, so a few dozen connections are plenty, and idle or slow ones must not pin
 * the agent's file descriptors (which its iptables and nft commands need) or memory.
 */
export const HTTP_LIMITS = {
  /** Connections beyond this are closed at once (node's server.maxConnections). */
  maxConnections: 64,
  /** A client must send its request headers within this. */
  headersTimeoutMs: 5_000,
  /** ... and its whole request within this. */
  requestTimeoutMs: 10_000,
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: 5_000,
  /** A socket with no traffic at all (e.g. opened and never written) is destroyed after this. */
  idleTimeoutMs: 10_000,
  /** Larger request headers get 431. */
  maxHeaderBytes: 8 * 1024,
} as const;

/** Why a listen failed, in words that point at the flag to change. */
function describeListenError(e: NodeJS.ErrnoException, flag: string, value: string): string {
  const unresolved = 'the host name does not resolve; use an IP address';
  const why: Readonly<Record<string, string>> = {
    EADDRINUSE: `address already in use (another process, perhaps a second ip-masq-agent on this node, listens there); choose another address or set ${flag}=0 to disable`,
    EADDRNOTAVAIL: 'this host has no such address; use one of its addresses, or :port for all interfaces',
    EACCES: 'permission denied (ports below 1024 need CAP_NET_BIND_SERVICE); choose a higher port',
    ENOTFOUND: unresolved,
    EAI_AGAIN: unresolved,
  };
  return `${flag}=${value}: ${why[e.code ?? ''] ?? `cannot listen: ${e.message}`}`;
}

/**
 * The path of a request target, in origin form (`/healthz?x`) or absolute form
 * (`http://127.0.0.1:10264/healthz?x`, sent through proxies and by some clients), which an HTTP/1.1
 * server must accept (RFC 9112, section 3.2.2).
 */
export function requestPath(target: string): string {
  return target.replace(/^https?:\/\/[^/?#]*\/?/i, '/').split('?')[0] ?? '/';
}

function handle(routes: Routes, log: Logger, req: IncomingMessage, res: ServerResponse): void {
  const send = (status: number, contentType: string, body: string, headers: Record<string, string> = {}): void => {
    res.writeHead(status, {
      'Content-Type': contentType,
      'Content-Length': String(Buffer.byteLength(body)),
      'Cache-Control': 'no-store',
      'X-Content-Type-Options': 'nosniff',
      ...headers,
    });
    res.end(body); // node:http drops the body of a HEAD response itself
  };
  const path = requestPath(req.url ?? '/');
  const route = Object.hasOwn(routes, path) ? routes[path] : undefined;
  if (!route) return send(404, 'text/plain; charset=utf-8', `404 page not found; try ${Object.keys(routes).join(', ')}\n`);
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    // Closing the connection spares reading a body nobody asked for.
    return send(405, 'text/plain; charset=utf-8', `405 method not allowed; use GET or HEAD\n`, { Allow: 'GET, HEAD', Connection: 'close' });
  }
  if (req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0) {
    return send(413, 'text/plain; charset=utf-8', `413 a GET or HEAD request takes no body\n`, { Connection: 'close' });
  }
  route().then(
    (r) => send(r.status, r.contentType, r.body),
    (e: unknown) => {
      const message = errorMessage(e);
      log.error('HTTP handler failed', { path, error: message });
      send(500, 'text/plain; charset=utf-8', `500 internal error: ${message}\n`);
    },
  );
}

/**
 * Serves `routes` on the flag's address; resolves undefined (and logs it) when the flag disables the
 * server, rejects with a message naming the flag when it cannot listen (address in use, ...).
 * Throws UsageError when the address cannot be parsed.
 */
export async function startHttpServer(opts: {
  /** The flag's value: `host:port`, `[v6]:port`, `:port`; `''` or `'0'` disables the server. */
  readonly bindAddress: string;
  /** The flag it came from, e.g. `--healthz-bind-address`, named in every message about it. */
  readonly flag: string;
  readonly routes: Routes;
  readonly log: Logger;
  /** Default HTTP_LIMITS; tests shorten them. */
  readonly limits?: { readonly [K in keyof typeof HTTP_LIMITS]?: number };
}) {
  const { flag, log } = opts;
  const bind = parseBindAddress(opts.bindAddress, flag);
  const paths = Object.keys(opts.routes);
  if (!bind) {
    log.info(`HTTP server for ${paths.join(', ')} disabled (${flag} is empty or 0)`, { flag });
    return undefined;
  }
  const limits = { ...HTTP_LIMITS, ...opts.limits };
  const server: Server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      maxHeaderSize: limits.maxHeaderBytes,
      // How often node checks the two timeouts above; its default (30 s) would let them slip.
      connectionsCheckingInterval: Math.min(1000, limits.headersTimeoutMs),
    },
    (req, res) => handle(opts.routes, log, req, res),
  );
  server.maxConnections = limits.maxConnections;
  // With no 'timeout' listener node destroys the socket: an idle connection frees its descriptor.
  server.setTimeout(limits.idleTimeoutMs);
  // At most one line a minute, however many connections a flood brings.
  const noteDrops = coalesceNotes({
    windowMs: 60_000,
    setTimer: (ms, fn) => void setTimeout(fn, ms).unref(),
    note: (n) => log.warn('HTTP connection limit reached; new connections are closed at once until some end', { flag, maxConnections: limits.maxConnections, dropped: n ?? 1 }),
  });
  server.on('drop', noteDrops);
  server.listen(bind.port, bind.host);
  try {
    // Rejects on an 'error' before 'listening', and leaves no listener behind either way.
    await once(server, 'listening');
  } catch (e) {
    throw new Error(describeListenError(e as NodeJS.ErrnoException, flag, opts.bindAddress), { cause: e });
  }
  // After a successful listen, a server error must not crash the agent: it only costs the endpoint.
  server.on('error', (e: Error) => log.error('HTTP server error', { flag, error: e.message }));
  const info = server.address() as AddressInfo;
  const url = `http://${formatHostPort(info.address, info.port)}`;
  log.info(`serving ${paths.join(', ')} on ${url}`, { flag, url });
  return {
    /** The address actually bound (`::` or `0.0.0.0` for all interfaces). */
    address: info.address,
    /** The port actually bound (useful with port 0). */
    port: info.port,
    /** `http://host:port`, for logs and tests. */
    url,
    /** Stops listening and drops open keep-alive connections. */
    close: (): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        server.close((e) => (e ? reject(e) : resolve()));
        // close() only drops idle connections; a scrape stuck in a handler must not hold up shutdown.
        server.closeAllConnections();
      }),
  };
}
