/**
 * The control socket under load and abuse (issue "Hardening", docs/security.md): listings made in
 * pieces and streamed, so a big connection table is listed without holding it whole and with the
 * event loop running between pieces; and each limit of a client: argv words, request bytes (one
 * and all clients), clients at once, idle clients, clients that do not read their replies.
 * The server runs in-process on a Unix socket in a temporary directory, over a real Engine.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EngineControl } from "../../src/control/adapter.js";
import { collect, run } from "../../src/control/commands.js";
import { CONNS_PER_CHUNK } from "../../src/control/format.js";
import type { EventLog, LogFields } from "../../src/control/observe/log.js";
import {
  type ControlServer,
  type ControlServerOptions,
  startControlServer,
} from "../../src/control/server.js";
import type { ConnEntry } from "../../src/control/target.js";
import { clock } from "../../src/datapath/clock.js";
import { Engine } from "../../src/datapath/engine.js";
import { ipToU32 } from "../../src/lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../src/lib/proto.js";
import { FwdMethod } from "../../src/tables/model.js";
import { sendRequest } from "../../src/tools/cli/lvsadm.js";

const CONNS = 50_000;

/** An engine with one service, two dests and `n` connections. */
function filledTarget(n: number): EngineControl {
  const engine = new Engine({ maxConns: 1 << 16, sweepPerBatch: 0 });
  const t = engine.table;
  const key = { proto: IPPROTO_TCP, addr: ipToU32("10.0.0.1"), port: 80 };
  t.addService(key, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff });
  for (const a of ["192.168.1.1", "192.168.1.2"])
    t.addDest(key, {
      addr: ipToU32(a),
      port: 80,
      weight: 1,
      fwd: FwdMethod.MASQ,
      uThreshold: 0,
      lThreshold: 0,
    });
  const [svc] = t.list();
  for (let i = 0; i < n; i++) {
    const d = svc!.dests[i & 1]!;
    const caddr = (0x0b000000 + (i >>> 4)) | 0;
    const cport = 1024 + (i & 15);
    engine.ct.create(
      IPPROTO_TCP,
      caddr,
      cport,
      key.addr | 0,
      80,
      d.addr | 0,
      80,
      caddr,
      cport,
      0,
      false,
      d,
      svc!.id,
      -1,
    );
  }
  expect(engine.ct.count).toBe(n);
  return new EngineControl(engine);
}

/** Wraps a target's connsFrom to count the pieces read. */
function counting(target: EngineControl): { target: EngineControl; reads: () => number } {
  let reads = 0;
  const inner = target.connsFrom.bind(target);
  target.connsFrom = (cursor: number, max: number, out: ConnEntry[]) => {
    reads++;
    return inner(cursor, max, out);
  };
  target.conns = () => {
    throw new Error("a streamed listing must not read the whole table");
  };
  return { target, reads: () => reads };
}

function open(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

/** Resolves when `s` closes (true) or after `ms` (false). */
function closedWithin(s: Socket, ms: number): Promise<boolean> {
  if (s.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    s.once("close", () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** An EventLog that keeps "event:reason" of each line. */
function recorder(): { log: EventLog; events: string[] } {
  const events: string[] = [];
  const keep = (f: LogFields) => {
    events.push(`${String(f.event)}${f.reason !== undefined ? `:${String(f.reason)}` : ""}`);
  };
  return { log: { error: keep, warn: keep, info: keep, debug: keep }, events };
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Send one request line and collect reply lines until the final one (has "code"). */
function exchange(s: Socket, req: unknown): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const lines: Record<string, unknown>[] = [];
    let buf = "";
    const onData = (d: Buffer) => {
      buf += d.toString("utf8");
      for (let nl = buf.indexOf("\n"); nl !== -1; nl = buf.indexOf("\n")) {
        const o = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        lines.push(o);
        if ("code" in o) {
          s.off("data", onData);
          resolve(lines);
          return;
        }
      }
    };
    s.on("data", onData);
    s.once("error", reject);
    s.write(`${JSON.stringify(req)}\n`);
  });
}

describe("control socket: streamed listings and client limits", () => {
  let dir: string;
  let path: string;
  let server: ControlServer | undefined;
  const sockets: Socket[] = [];

  const start = async (target: EngineControl, opts: ControlServerOptions = {}) => {
    server = await startControlServer(path, target, opts);
  };
  const client = async () => {
    const s = await open(path);
    s.on("error", () => {});
    sockets.push(s);
    return s;
  };

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "lvsctl-limits-"));
    path = join(dir, "control.sock");
    clock.nowMs = 1_000_000; // the listings' expire column does not move during a test
  });
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await server?.close();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("streams -Lnc in pieces, with the event loop turning between them, as the whole listing", async () => {
    const { target, reads } = counting(filledTarget(CONNS));
    const whole = run(["-Lnc"], new EngineControl(target.engine));
    expect(whole.stdout.split("\n")).toHaveLength(CONNS + 3); // title, header, entries, ""
    await start(target, { listingSliceMs: 0 }); // one piece a turn
    let turns = 0;
    const ticker = setInterval(() => turns++, 0);
    const s = await client();
    const lines = await exchange(s, { argv: ["-Lnc"], stream: true });
    clearInterval(ticker);
    const outs = lines.slice(0, -1);
    expect(lines.at(-1)).toEqual({ stdout: "", stderr: "", code: 0 });
    expect(outs.length).toBeGreaterThanOrEqual(Math.ceil(CONNS / CONNS_PER_CHUNK));
    expect(outs.map((o) => o.out).join("")).toBe(whole.stdout);
    expect(reads()).toBeGreaterThanOrEqual(Math.ceil(CONNS / CONNS_PER_CHUNK));
    // timers ran while the listing was being made, not only after it
    expect(turns).toBeGreaterThan(outs.length / 4);
  });

  it("makes several pieces in one turn while its slice lasts (listingSliceMs)", async () => {
    const n = 6 * CONNS_PER_CHUNK; // about 0.6 MB: under the 1 MiB a client may leave unread
    /** The most pieces the listing made between two turns of the event loop (setImmediate). */
    const mostPerTurn = async (listingSliceMs: number): Promise<{ most: number; pieces: number }> => {
      await server?.close();
      const { target, reads } = counting(filledTarget(n));
      await start(target, { listingSliceMs });
      let done = false;
      let most = 0;
      let last = reads();
      const tick = (): void => {
        const r = reads();
        most = Math.max(most, r - last);
        last = r;
        if (!done) setImmediate(tick);
      };
      setImmediate(tick);
      const s = await client();
      const lines = await exchange(s, { argv: ["-Lnc"], stream: true });
      done = true;
      return { most, pieces: lines.length - 1 };
    };
    const one = await mostPerTurn(0);
    const long = await mostPerTurn(60_000);
    expect(long.pieces).toBe(one.pieces);
    expect(one.pieces).toBeGreaterThanOrEqual(6);
    expect(one.most).toBeLessThanOrEqual(2);
    expect(long.most).toBeGreaterThanOrEqual(5);
  });

  it("gives a client that does not ask for a stream the same text in one line (lvsadm's client)", async () => {
    const { target } = counting(filledTarget(5_000));
    const expected = run(["-Lnc"], new EngineControl(target.engine));
    await start(target);
    expect(await sendRequest(path, { argv: ["-Lnc"] })).toEqual(expected);
    const s = await client();
    const lines = await exchange(s, { argv: ["-Sn"] });
    expect(lines).toHaveLength(1);
    expect(lines[0]!.stdout).toBe(run(["-Sn"], target).stdout);
  });

  it("stops making a listing while the client does not read it, and closes it after writeTimeoutMs", async () => {
    const { target, reads } = counting(filledTarget(CONNS));
    const { log, events } = recorder();
    await start(target, { maxWriteBytes: 64 * 1024, writeTimeoutMs: 400, log });
    const s = await client();
    s.pause(); // read nothing
    s.write(`${JSON.stringify({ argv: ["-Lnc"], stream: true })}\n`);
    await new Promise((r) => setTimeout(r, 150));
    const early = reads();
    // a whole listing is ~25 pieces; a client that reads nothing holds lvsd back after a few
    expect(early).toBeGreaterThan(0);
    expect(early).toBeLessThan(Math.ceil(CONNS / CONNS_PER_CHUNK) / 2);
    await until(() => events.includes("control.client_closed:not_reading"), 2_000);
    expect(reads()).toBe(early);
    // what it had not read ends short of the whole listing: lvsd made no more of it
    let got = 0;
    s.on("data", (d: Buffer) => {
      got += d.length;
    });
    s.resume();
    expect(await closedWithin(s, 2_000)).toBe(true);
    expect(got).toBeLessThan(CONNS * 60);
    // lvsd answers the next client as usual
    expect((await sendRequest(path, { argv: ["-L", "--timeout"] })).code).toBe(0);
  });

  it("refuses a request with more argv words than maxArgs", async () => {
    await start(filledTarget(0), { maxArgs: 64 });
    const r = await sendRequest(path, { argv: Array.from({ length: 65 }, () => "-n") });
    expect(r).toEqual({
      stdout: "",
      stderr: "lvsd: bad control request: request has 65 arguments (at most 64)\n",
      code: 2,
    });
    expect((await sendRequest(path, { argv: ["-Ln"] })).code).toBe(0);
  });

  it("bounds the unfinished requests of all clients together (maxPendingBytes)", async () => {
    await start(filledTarget(0), { maxPendingBytes: 10_000, maxRequestBytes: 8_000 });
    const a = await client();
    const b = await client();
    a.write(`{"argv": ["-R"], "stdin": "-A -t 10.0.0.9:80 -s rr${" ".repeat(6_000)}`);
    await new Promise((r) => setTimeout(r, 50));
    const replies: string[] = [];
    b.on("data", (d: Buffer) => replies.push(d.toString()));
    b.write(`{"argv": ["-R"], "stdin": "${"y".repeat(6_000)}`);
    expect(await closedWithin(b, 2_000)).toBe(true);
    expect(JSON.parse(replies.join(""))).toEqual({
      stdout: "",
      stderr: "lvsd: control requests of all clients larger than 10000 bytes: try again\n",
      code: 2,
    });
    // the first client's request is still whole: ending its line runs it
    const reply = new Promise<string>((resolve) => a.once("data", (d: Buffer) => resolve(d.toString())));
    a.write('"}\n');
    expect(JSON.parse(await reply)).toEqual({ stdout: "", stderr: "", code: 0 });
    expect((await sendRequest(path, { argv: ["-Ln"] })).stdout).toContain("TCP  10.0.0.9:80 rr");
  });

  it("closes the client idle longest when maxClients are connected; refuses one when all are busy", async () => {
    const { target } = counting(filledTarget(CONNS));
    await start(target, { maxClients: 3, maxWriteBytes: 16 * 1024, writeTimeoutMs: 5_000 });
    const idle = [await client(), await client(), await client()];
    await new Promise((r) => setTimeout(r, 20));
    // a fourth client gets in: the first (idle longest) is closed
    const r = await sendRequest(path, { argv: ["-L", "--timeout"] });
    expect(r).toEqual({ stdout: "Timeout (tcp tcpfin udp): 900 120 300\n", stderr: "", code: 0 });
    expect(await closedWithin(idle[0]!, 1_000)).toBe(true);
    expect(idle[1]!.destroyed || idle[2]!.destroyed).toBe(false);
    // three clients with listings they do not read: all busy, so a new one is refused
    for (const s of sockets.splice(0)) s.destroy();
    await new Promise((r) => setTimeout(r, 20));
    for (let i = 0; i < 3; i++) {
      const s = await client();
      s.pause();
      s.write(`${JSON.stringify({ argv: ["-Lnc"], stream: true })}\n`);
    }
    await new Promise((r) => setTimeout(r, 100));
    expect(await sendRequest(path, { argv: ["-Ln"] })).toEqual({
      stdout: "",
      stderr: "lvsd: too many control clients (3), all busy: try again\n",
      code: 1,
    });
  });

  it("closes a client that sends and reads nothing for idleTimeoutMs", async () => {
    await start(filledTarget(0), { idleTimeoutMs: 200 });
    const s = await client();
    expect(await closedWithin(s, 2_000)).toBe(true);
    const busy = await client();
    const lines = await exchange(busy, { argv: ["-Ln"] });
    expect(lines[0]!.code).toBe(0);
  });

  it("ends a listing cut short by an internal error with status 1 and the error, streamed or not", async () => {
    const target = filledTarget(CONNS);
    let reads = 0;
    const inner = target.connsFrom.bind(target);
    target.connsFrom = (cursor: number, max: number, out: ConnEntry[]) => {
      if (++reads === 3) throw new Error("table walk failed");
      return inner(cursor, max, out);
    };
    await start(target);
    const lines = await exchange(await client(), { argv: ["-Lnc"], stream: true });
    expect(lines.length).toBe(4); // header, two pieces, the final line
    expect(lines.at(-1)).toEqual({
      stdout: "",
      stderr: "lvsd: internal error: table walk failed\n",
      code: 1,
    });
    reads = 0;
    const r = await sendRequest(path, { argv: ["-Lnc"] });
    expect(r.code).toBe(1);
    expect(r.stderr).toBe("lvsd: internal error: table walk failed\n");
    expect(r.stdout.split("\n")).toHaveLength(2 + 2 * CONNS_PER_CHUNK + 1);
  });

  it("lists UDP entries and templates the same streamed or not (the format is shared)", async () => {
    const target = filledTarget(10);
    const e = target.engine;
    const [svc] = e.table.list();
    const d = svc!.dests[0]!;
    e.ct.create(
      IPPROTO_UDP,
      0x0c000001,
      5353,
      svc!.addr | 0,
      53,
      d.addr | 0,
      53,
      0x0c000001,
      5353,
      0,
      false,
      d,
      svc!.id,
      -1,
    );
    const plain = run(["-Lnc"], target);
    const streamed = run(["-Lnc"], target, "", { stream: true });
    expect(streamed.more).toBeDefined();
    expect(collect(streamed).stdout).toBe(plain.stdout);
    expect(plain.stdout).toContain("UDP ");
  });
});
