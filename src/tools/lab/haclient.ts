/**
 * The failover lab's client (src/tools/lab/ha.ts): one Node process holding many TCP
 * connections to the VIP, run inside the client namespace. Three kinds of load, all bounded in
 * count and time:
 *
 * - downloads: `downloads` connections each GET `path` once (a file nginx sends slowly, with
 *   limit_rate), every byte compared with the expected file as it arrives (bytes differing are
 *   counted as corrupted) and the whole body hashed (SHA-256);
 * - loops: `loops` keep-alive connections, each sending `GET /` again `loopIntervalMs` after
 *   the previous answer, checking that every answer is the same real server's name;
 * - new: a steady stream of `newPerSec` short connections (`Connection: close`), one request each.
 *
 * Plain sockets with a minimal HTTP/1.1 response reader (Content-Length bodies, as nginx sends),
 * so that every connection is one TCP connection and a reset is seen as a reset.
 *
 * Protocol: the options are one JSON argument. Standard input: `stop [DRAIN_MS]` ends the loops (each
 * finishes its request in flight and closes) and the stream of new connections; downloads run to
 * their end. Standard output, JSON lines: `{"ev":"ready",...}` once every download and loop
 * connection is established, `{"ev":"progress",...}` every second, and finally
 * `{"ev":"done",...}` (HaClientResult): one report per connection and 10 ms buckets of what
 * arrived, for the lab's timeline. Hard bounds: `deadlineMs` after start (and `drainMs`, or
 * DRAIN_MS, after `stop`) every connection still open is destroyed and reported `unfinished`.
 */
import { createHash, type Hash } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";

export interface HaClientOptions {
  vip: string;
  port: number;
  downloads: number;
  /** Path of the download (nginx serves `expectFile` there). */
  path: string;
  /** The file the downloads must deliver, read by the client to compare. */
  expectFile: string;
  loops: number;
  loopIntervalMs: number;
  newPerSec: number;
  /** Limit on connections opened per 10 ms while ramping up (the SYN burst). */
  rampPer10ms: number;
  connectTimeoutMs: number;
  /** Hard bound after start. */
  deadlineMs: number;
  /** Bound after `stop`. */
  drainMs: number;
}

export type ConnKind = "download" | "loop" | "new";
/**
 * ok: finished as expected. reset: ECONNRESET/EPIPE after it was established. closed: the peer
 * closed it early. refused: the connection could not be established (refused, reset or timed out
 * during the handshake). unfinished: still open at the bound (a stalled connection). error: any
 * other socket error. bad: an answer that is not what the server sends.
 */
export type ConnOutcome = "ok" | "reset" | "closed" | "refused" | "unfinished" | "error" | "bad";

export interface ConnReport {
  id: number;
  kind: ConnKind;
  /** Local port (the connection's identity in lvsadm -Lnc). */
  lport: number;
  established: boolean;
  outcome: ConnOutcome;
  /** Body bytes received (all responses). */
  bytes: number;
  /** Downloads: bytes expected; others: 0. */
  expected: number;
  /** Downloads: SHA-256 of the body equals the file's; null for the others or when unfinished. */
  checksumOk: boolean | null;
  /** Bytes that arrived with a value other than the file's at that offset. */
  corrupted: number;
  requests: number;
  failedRequests: number;
  /** The real server that answered (loops, new). */
  rs: string;
  openedAt: number;
  closedAt: number;
  /** Longest gap between two arrivals of data while open (ms). */
  maxGapMs: number;
  /** When data last arrived (ms since the epoch; 0: never). */
  lastDataAt: number;
  error: string;
}

export interface HaClientResult {
  ev: "done";
  startedAt: number;
  bucketMs: number;
  /** Per bucket: download body bytes received. */
  dlBytes: number[];
  /** Per bucket: loop answers received. */
  loopAnswers: number[];
  /** Per bucket: new connections answered / failed. */
  newOk: number[];
  newFailed: number[];
  conns: ConnReport[];
}

const BUCKET_MS = 10;

class Client {
  readonly o: HaClientOptions;
  readonly expect: Buffer;
  readonly expectSha: string;
  readonly t0 = Date.now();
  readonly reports: ConnReport[] = [];
  readonly dlBytes: number[] = [];
  readonly loopAnswers: number[] = [];
  readonly newOk: number[] = [];
  readonly newFailed: number[] = [];
  private readonly open = new Map<number, { sock: Socket; rep: ConnReport }>();
  private nextId = 1;
  stopping = false;
  private stoppedAt = 0;
  private ready = false;
  private drainMs: number;

  constructor(o: HaClientOptions) {
    this.o = o;
    this.drainMs = o.drainMs;
    this.expect = readFileSync(o.expectFile);
    this.expectSha = createHash("sha256").update(this.expect).digest("hex");
  }

  bucket(arr: number[], n: number): void {
    const i = Math.floor((Date.now() - this.t0) / BUCKET_MS);
    while (arr.length <= i) arr.push(0);
    arr[i] = (arr[i] ?? 0) + n;
  }

  /** Open one connection of `kind`; `onConnect` drives it. */
  private start(kind: ConnKind): { sock: Socket; rep: ConnReport } {
    const rep: ConnReport = {
      id: this.nextId++,
      kind,
      lport: 0,
      established: false,
      outcome: "unfinished",
      bytes: 0,
      expected: kind === "download" ? this.expect.length : 0,
      checksumOk: null,
      corrupted: 0,
      requests: 0,
      failedRequests: 0,
      rs: "",
      openedAt: Date.now(),
      closedAt: 0,
      maxGapMs: 0,
      lastDataAt: 0,
      error: "",
    };
    this.reports.push(rep);
    const sock = connect({ host: this.o.vip, port: this.o.port, noDelay: true });
    const c = { sock, rep };
    this.open.set(rep.id, c);
    const timer = setTimeout(() => {
      if (!rep.established) this.finish(c, "refused", "connect timeout");
    }, this.o.connectTimeoutMs);
    sock.once("connect", () => {
      clearTimeout(timer);
      rep.established = true;
      rep.lport = sock.localPort ?? 0;
    });
    sock.on("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const code = e.code ?? "";
      if (!rep.established) this.finish(c, "refused", code || e.message);
      else if (code === "ECONNRESET" || code === "EPIPE") this.finish(c, "reset", code);
      else this.finish(c, "error", code || e.message);
    });
    sock.on("close", () => {
      clearTimeout(timer);
      if (rep.closedAt === 0) this.finish(c, rep.established ? "closed" : "refused", "closed by peer");
    });
    return c;
  }

  finish(c: { sock: Socket; rep: ConnReport }, outcome: ConnOutcome, error = ""): void {
    const rep = c.rep;
    if (rep.closedAt !== 0) return;
    rep.closedAt = Date.now();
    rep.outcome = outcome;
    rep.error = error;
    this.open.delete(rep.id);
    if (outcome === "ok") c.sock.end();
    else c.sock.destroy();
    if (rep.kind === "new") this.bucket(outcome === "ok" ? this.newOk : this.newFailed, 1);
    this.maybeDone();
  }

  /** Read HTTP responses (Content-Length bodies) from the socket: onBody(chunk, offset) per piece, onEnd(status) per response. */
  private responses(
    c: { sock: Socket; rep: ConnReport },
    h: { onBody(b: Buffer, off: number): void; onEnd(status: number): void },
  ): void {
    let head: Buffer = Buffer.alloc(0);
    let inBody = false;
    let status = 0;
    let left = 0;
    let off = 0;
    let last = Date.now();
    c.sock.on("data", (d: Buffer) => {
      const now = Date.now();
      if (now - last > c.rep.maxGapMs) c.rep.maxGapMs = now - last;
      last = now;
      c.rep.lastDataAt = now;
      let buf = d;
      while (buf.length > 0 && c.rep.closedAt === 0) {
        if (!inBody) {
          head = head.length === 0 ? buf : Buffer.concat([head, buf]);
          const end = head.indexOf("\r\n\r\n");
          if (end < 0) {
            if (head.length > 16384) this.finish(c, "bad", "response head too long");
            return;
          }
          const text = head.toString("latin1", 0, end);
          status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
          left = Number(/\r\ncontent-length: *(\d+)/i.exec(text)?.[1] ?? -1);
          if (status === 0 || left < 0) {
            this.finish(c, "bad", `bad response head: ${JSON.stringify(text.slice(0, 80))}`);
            return;
          }
          buf = head.subarray(end + 4);
          head = Buffer.alloc(0);
          inBody = true;
          off = 0;
        }
        const take = Math.min(left, buf.length);
        if (take > 0) {
          c.rep.bytes += take;
          h.onBody(buf.subarray(0, take), off);
          off += take;
          left -= take;
        }
        buf = buf.subarray(take);
        if (left === 0) {
          inBody = false;
          h.onEnd(status);
        }
      }
    });
  }

  download(): void {
    const c = this.start("download");
    const rep = c.rep;
    let hash: Hash = createHash("sha256");
    this.responses(c, {
      onBody: (b, off) => {
        hash.update(b);
        const want = this.expect;
        for (let i = 0; i < b.length; i++) if (b[i] !== want[off + i]) rep.corrupted++;
        this.bucket(this.dlBytes, b.length);
      },
      onEnd: (status) => {
        rep.requests++;
        const sha = hash.digest("hex");
        hash = createHash("sha256");
        rep.checksumOk = sha === this.expectSha && rep.bytes === rep.expected;
        if (status !== 200 || !rep.checksumOk) {
          rep.failedRequests++;
          this.finish(c, "bad", `status ${status}, ${rep.bytes} of ${rep.expected} bytes, sha256 ${sha}`);
        } else this.finish(c, "ok");
      },
    });
    c.sock.once("connect", () => {
      c.sock.write(`GET ${this.o.path} HTTP/1.1\r\nHost: ${this.o.vip}\r\n\r\n`);
    });
  }

  loop(): void {
    const c = this.start("loop");
    const rep = c.rep;
    let body = "";
    const ask = (): void => {
      if (rep.closedAt !== 0) return;
      if (this.stopping) {
        this.finish(c, "ok");
        return;
      }
      rep.requests++;
      c.sock.write(`GET / HTTP/1.1\r\nHost: ${this.o.vip}\r\n\r\n`);
    };
    this.responses(c, {
      onBody: (b) => {
        body += b.toString("latin1");
      },
      onEnd: (status) => {
        const name = body.trim();
        body = "";
        this.bucket(this.loopAnswers, 1);
        if (rep.rs === "") rep.rs = name;
        if (status !== 200 || name !== rep.rs) {
          rep.failedRequests++;
          this.finish(c, "bad", `status ${status}, answer '${name}' (first answer '${rep.rs}')`);
          return;
        }
        setTimeout(ask, this.o.loopIntervalMs);
      },
    });
    c.sock.once("connect", ask);
  }

  one(): void {
    const c = this.start("new");
    const rep = c.rep;
    let body = "";
    this.responses(c, {
      onBody: (b) => {
        body += b.toString("latin1");
      },
      onEnd: (status) => {
        rep.rs = body.trim();
        if (status !== 200 || !/^rs\d+$/.test(rep.rs)) {
          rep.failedRequests++;
          this.finish(c, "bad", `status ${status}, answer '${rep.rs}'`);
        } else this.finish(c, "ok");
      },
    });
    c.sock.once("connect", () => {
      rep.requests++;
      c.sock.write(`GET / HTTP/1.1\r\nHost: ${this.o.vip}\r\nConnection: close\r\n\r\n`);
    });
  }

  async run(): Promise<void> {
    const o = this.o;
    // ramp up: the long-lived connections in small groups, so that the SYNs come in a stream
    const todo: ConnKind[] = [
      ...Array.from({ length: o.downloads }, () => "download" as const),
      ...Array.from({ length: o.loops }, () => "loop" as const),
    ];
    for (let i = 0; i < todo.length; i += o.rampPer10ms) {
      for (const k of todo.slice(i, i + o.rampPer10ms)) k === "download" ? this.download() : this.loop();
      await sleep(10);
    }
    const long = this.reports.slice();
    const readyBy = Date.now() + o.connectTimeoutMs;
    while (!this.ready && Date.now() < readyBy) {
      if (long.every((r) => r.established || r.closedAt !== 0)) {
        this.ready = true;
        emit({
          ev: "ready",
          t: Date.now(),
          established: long.filter((r) => r.established && r.closedAt === 0).length,
          failed: long.filter((r) => r.closedAt !== 0).length,
        });
      } else await sleep(20);
    }
    if (!this.ready)
      emit({ ev: "ready", t: Date.now(), established: long.filter((r) => r.established).length });
    this.ready = true;
    // the stream of new connections until `stop`
    const every = 1000 / Math.max(0.001, o.newPerSec);
    let next = Date.now();
    while (!this.stopping && Date.now() - this.t0 < o.deadlineMs) {
      if (o.newPerSec > 0 && Date.now() >= next) {
        this.one();
        next += every;
      }
      await sleep(Math.max(1, Math.min(50, next - Date.now())));
    }
  }

  /** End the loops and the stream of new connections; `drainMs` replaces the option's bound. */
  stop(drainMs?: number): void {
    if (this.stopping) return;
    if (drainMs !== undefined) this.drainMs = drainMs;
    this.stopping = true;
    this.stoppedAt = Date.now();
    this.maybeDone();
  }

  /** Every second: progress; at the bounds: end what is still open. */
  tick(): void {
    const now = Date.now();
    emit({
      ev: "progress",
      t: now,
      open: this.open.size,
      downloaded: this.reports.reduce((s, r) => s + (r.kind === "download" ? r.bytes : 0), 0),
      answers: this.reports.reduce((s, r) => s + (r.kind === "loop" ? r.requests : 0), 0),
      newConns: this.reports.filter((r) => r.kind === "new").length,
    });
    const over =
      now - this.t0 >= this.o.deadlineMs || (this.stopping && now - this.stoppedAt >= this.drainMs);
    if (over) {
      for (const c of [...this.open.values()]) this.finish(c, "unfinished", "still open at the time bound");
      this.done();
    }
  }

  private finished = false;
  private maybeDone(): void {
    if (this.stopping && this.open.size === 0) this.done();
  }

  done(): void {
    if (this.finished) return;
    this.finished = true;
    const r: HaClientResult = {
      ev: "done",
      startedAt: this.t0,
      bucketMs: BUCKET_MS,
      dlBytes: this.dlBytes,
      loopAnswers: this.loopAnswers,
      newOk: this.newOk,
      newFailed: this.newFailed,
      conns: this.reports,
    };
    process.stdout.write(`${JSON.stringify(r)}\n`, () => process.exit(0));
  }
}

function emit(o: object): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function main(): void {
  const o = JSON.parse(process.argv[2] ?? "{}") as HaClientOptions;
  const client = new Client(o);
  let input = "";
  process.stdin.on("data", (d: Buffer) => {
    input += d.toString();
    const m = /^stop(?: (\d+))?$/m.exec(input);
    if (m) client.stop(m[1] !== undefined ? Number(m[1]) : undefined);
  });
  // the lab going away (stdin closed) ends the run as `stop` does
  process.stdin.on("end", () => client.stop());
  setInterval(() => client.tick(), 1000);
  client.run().catch((e: unknown) => {
    process.stderr.write(`haclient: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}

if (process.argv[1]?.endsWith("haclient.js")) main();
