/**
 * lvsd's HTTP endpoint (`lvsd --http ADDR:PORT`, off by default): a plain node:http server with
 * a fixed table of GET routes (Prometheus `/metrics`, the status page `/` and its JSON API).
 * It listens on a loopback address unless `--http-allow-remote` is given (checked by lvsd's
 * argument parser). Handlers run between batches of the data path; a handler that throws
 * answers 500 and is logged, never taking lvsd down.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";

/** A GET handler. `url` is the parsed request URL. */
export type Route = (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;

export interface HttpServer {
  readonly host: string;
  /** The bound port (the one asked for, or the one chosen for port 0). */
  readonly port: number;
  close(): Promise<void>;
}

export class HttpServerError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = "HttpServerError";
    this.code = code;
  }
}

/** Send `body` with status 200 and `type`, or HEAD without the body. */
export function reply(req: IncomingMessage, res: ServerResponse, type: string, body: string | Buffer): void {
  res.writeHead(200, {
    "content-type": type,
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

function fail(res: ServerResponse, status: number, text: string, extra: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...extra });
  res.end(`${text}\n`);
}

/** Connections the --http server keeps at once; more are closed as they come. */
export const HTTP_MAX_CONNECTIONS = 64;

export function startHttpServer(
  host: string,
  port: number,
  routes: Readonly<Record<string, Route>>,
  log: (msg: string) => void,
): Promise<HttpServer> {
  const server: Server = createServer((req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://lvsd");
    } catch {
      fail(res, 400, "bad request");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      fail(res, 405, "method not allowed", { allow: "GET, HEAD" });
      return;
    }
    const route = Object.hasOwn(routes, url.pathname) ? routes[url.pathname] : undefined;
    if (route === undefined) {
      fail(res, 404, "not found");
      return;
    }
    Promise.resolve()
      .then(() => route(req, res, url))
      .catch((err: unknown) => {
        log(`http: ${url.pathname}: ${err instanceof Error ? err.message : String(err)}`);
        fail(res, 500, "internal error");
      });
  });
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.maxHeadersCount = 64;
  // a bounded number of descriptors, whatever scrapers and browsers do (docs/security.md)
  server.maxConnections = HTTP_MAX_CONNECTIONS;
  return new Promise((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      reject(new HttpServerError(err.code ?? "EIO", `--http ${host}:${port}: ${err.message}`));
    });
    server.listen(port, host, () => {
      const a = server.address();
      const bound = typeof a === "object" && a !== null ? a.port : port;
      server.removeAllListeners("error");
      server.on("error", (err) => log(`http: ${err.message}`));
      resolve({
        host,
        port: bound,
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
