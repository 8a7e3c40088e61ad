/**
 * The lab's real-server program: a small HTTP and UDP server that says who it is.
 *   GET /            -> "<name>\n"
 *   GET /bytes/N     -> N bytes of a fixed pattern (patternByte(i)), for byte-exact transfers
 *   POST /sha256     -> the SHA-256 (hex) of the request body, for uploads
 *   UDP              -> "<name>:" + the datagram
 * Usage: node dist/src/lab/peer.js --name rs1 [--http PORT]... [--udp PORT]...
 */
import { createHash } from "node:crypto";
import { createSocket } from "node:dgram";
import { createServer } from "node:http";

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
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const v = args[i + 1];
    if (a === "--name" && v) name = v;
    else if (a === "--http" && v) http.push(Number(v));
    else if (a === "--udp" && v) udp.push(Number(v));
    else continue;
    i++;
  }
  for (const port of http) {
    createServer((req, res) => {
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
      res.end(`${name}\n`);
    }).listen(port);
  }
  for (const port of udp) {
    const s = createSocket("udp4");
    s.on("message", (msg, rinfo) =>
      s.send(Buffer.concat([Buffer.from(`${name}:`), msg]), rinfo.port, rinfo.address),
    );
    s.bind(port);
  }
  process.stdout.write(`peer ${name} ready\n`);
}

function slice(off: number, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) b[i] = patternByte(off + i);
  return b;
}

if (process.argv[1]?.endsWith("peer.js")) main();
