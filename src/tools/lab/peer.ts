/**
 * The lab's real-server program: a small HTTP and UDP server that says who it is.
 *   GET /            -> "<name>\n"
 *   GET /bytes/N     -> N bytes of a fixed pattern (patternByte(i)), for byte-exact transfers
 *   POST /sha256     -> the SHA-256 (hex) of the request body, for uploads
 *   UDP              -> "<name>:" + the datagram
 * With --proxy-http PORT the HTTP server expects a PROXY protocol header (v1 or v2) first, and
 * GET / answers "<name> <client address>:<client port>" from it.
 * UDP sockets bind to --udp-addr when given: a DR/TUN real server must answer a datagram to
 * the VIP from the VIP, which a socket bound to 0.0.0.0 does not do.
 * Usage: node dist/src/tools/lab/peer.js --name rs1 [--http PORT]... [--proxy-http PORT]... [--udp PORT]... [--udp-addr IP]
 */
import { createHash } from "node:crypto";
import { createSocket } from "node:dgram";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer as createTcpServer, type Socket } from "node:net";

const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/**
 * Parse a PROXY protocol header at the start of `b`: the client "addr:port" and the header's
 * length, `null` when more bytes are needed, or an Error when it is not a PROXY header.
 */
export function parseProxyHeader(b: Buffer): { client: string; len: number } | null | Error {
  if (b.length >= 12 && b.subarray(0, 12).equals(V2_SIG)) {
    if (b.length < 16) return null;
    const len = 16 + b.readUInt16BE(14);
    if (b.length < len) return null;
    if (b[13] !== 0x11 || len < 28) return new Error("PROXY v2: only TCP over IPv4");
    return { client: `${b[16]}.${b[17]}.${b[18]}.${b[19]}:${b.readUInt16BE(24)}`, len };
  }
  const want = "PROXY ";
  if (b.length < want.length)
    return want.startsWith(b.toString("latin1")) ? null : new Error("not a PROXY header");
  if (b.toString("latin1", 0, 6) !== want) return new Error("not a PROXY header");
  const end = b.indexOf("\r\n");
  if (end < 0) return b.length > 107 ? new Error("PROXY v1 header too long") : null;
  const f = b.toString("latin1", 0, end).split(" ");
  if (f.length !== 6 || f[1] !== "TCP4") return new Error("PROXY v1: only TCP4");
  return { client: `${f[2]}:${f[4]}`, len: end + 2 };
}

/** Byte i of the /bytes/N stream. */
export function patternByte(i: number): number {
  return (i * 31 + (i >>> 8) * 7 + (i >>> 16)) & 0xff;
}

/** The first n bytes of the pattern (for checks). */
export function pattern(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = patternByte(i);
  return b;
}

function main(): void {
  const args = process.argv.slice(2);
  let name = "peer";
  const http: number[] = [];
  const udp: number[] = [];
  let udpAddr: string | undefined;
  const proxied: number[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const v = args[i + 1];
    if (a === "--name" && v) name = v;
    else if (a === "--http" && v) http.push(Number(v));
    else if (a === "--udp" && v) udp.push(Number(v));
    else if (a === "--udp-addr" && v) udpAddr = v;
    else if (a === "--proxy-http" && v) proxied.push(Number(v));
    else continue;
    i++;
  }
  const clients = new WeakMap<Socket, string>();
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const m = /^\/bytes\/(\d+)$/.exec(req.url ?? "");
    if (req.method === "POST" && req.url === "/sha256") {
      const h = createHash("sha256");
      req.on("data", (d: Buffer) => h.update(d));
      req.on("end", () => res.end(`${h.digest("hex")}\n`));
      return;
    }
    if (m) {
      const n = Number(m[1]);
      res.writeHead(200, { "content-length": String(n), "content-type": "application/octet-stream" });
      let sent = 0;
      const write = (): void => {
        while (sent < n) {
          const len = Math.min(n - sent, 1 << 16);
          const buf = slice(sent, len);
          sent += len;
          if (!res.write(buf)) {
            res.once("drain", write);
            return;
          }
        }
        res.end();
      };
      write();
      return;
    }
    const client = clients.get(req.socket);
    res.end(client ? `${name} ${client}\n` : `${name}\n`);
  };
  for (const port of http) createServer(handler).listen(port);
  for (const port of proxied) {
    const server = createServer(handler);
    createTcpServer((sock) => {
      let buf = Buffer.alloc(0);
      const onData = (d: Buffer): void => {
        buf = Buffer.concat([buf, d]);
        const h = parseProxyHeader(buf);
        if (h === null) return;
        sock.off("data", onData);
        if (h instanceof Error) {
          sock.destroy();
          return;
        }
        clients.set(sock, h.client);
        sock.pause();
        if (buf.length > h.len) sock.unshift(buf.subarray(h.len));
        server.emit("connection", sock);
        sock.resume();
      };
      sock.on("data", onData);
      sock.on("error", () => {});
    }).listen(port);
  }
  for (const port of udp) {
    const s = createSocket("udp4");
    // A datagram from port 0 (a flooder's sources wrap around to it) cannot be answered: Node
    // throws at send, which would end the peer. A reply that cannot go out (ENOBUFS, EAGAIN
    // under a flood) is lost, as on a real server: without the callback the error would be an
    // 'error' event, and unhandled it ends the peer too.
    s.on("message", (msg, rinfo) => {
      if (rinfo.port === 0) return;
      s.send(Buffer.concat([Buffer.from(`${name}:`), msg]), rinfo.port, rinfo.address, () => {});
    });
    s.on("error", () => {});
    s.bind(port, udpAddr);
  }
  process.stdout.write(`peer ${name} ready\n`);
}

function slice(off: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) b[i] = patternByte(off + i);
  return b;
}

if (process.argv[1]?.endsWith("peer.js")) main();
