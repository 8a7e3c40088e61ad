/**
 * lvsadm --trace end to end in one process: lvsadm's client loop (src/tools/cli/lvsadm.ts) against
 * a real control socket whose server runs a TraceControl with its timer, on a director that
 * forwards in-memory traffic all along. The client blocks until the count, or until an interrupt
 * makes it send --trace-stop, then prints the count of frames written; a second trace is refused.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineControl } from "../../../src/control/adapter.js";
import { TraceControl } from "../../../src/control/observe/trace.js";
import { type ControlServer, startControlServer } from "../../../src/control/server.js";
import { Director } from "../../../src/datapath/director.js";
import { MemoryLink } from "../../../src/datapath/io/memory.js";
import { readPcapng } from "../../../src/datapath/io/pcap.js";
import { eth } from "../../../src/datapath/packet/build.js";
import { TCP_SYN } from "../../../src/datapath/packet/view.js";
import { macToBytes } from "../../../src/lib/addr.js";
import { type ClientIO, runClient } from "../../../src/tools/cli/lvsadm.js";
import { addNatDest, addService, IP, MAC, natEngine, tcpKey } from "../../datapath/engine/helpers.js";

const dir = mkdtempSync(join(tmpdir(), "lvs-trace-client-"));
const sock = join(dir, "control.sock");
let server: ControlServer;
let pumpTimer: NodeJS.Timeout;
let trace: TraceControl;

beforeAll(async () => {
  const e = natEngine();
  addService(e, tcpKey());
  addNatDest(e, tcpKey(), IP.rs1, 80);
  const d = new Director(e);
  const out = new MemoryLink("lvs0", macToBytes(MAC.dirOut));
  const inl = new MemoryLink("lvs1", macToBytes(MAC.dirIn));
  d.attach(out);
  d.attach(inl);
  trace = new TraceControl({ director: d, linkNames: ["lvs0", "lvs1"], tickMs: 20 });
  server = await startControlServer(sock, new EngineControl(e), { trace });
  // a client opening connections through the director, 2 SYNs every 10 ms
  let sport = 10000;
  pumpTimer = setInterval(() => {
    for (let k = 0; k < 2; k++) {
      out.inject(
        eth({ src: MAC.client, dst: MAC.dirOut })
          .ipv4({ src: IP.client, dst: IP.vip })
          .tcp({ sport: sport++, dport: 80, flags: TCP_SYN })
          .build(),
      );
    }
    d.drain(performance.now());
    out.drain();
    inl.drain();
  }, 10);
});

afterAll(async () => {
  clearInterval(pumpTimer);
  trace.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function io(onInterrupt?: ClientIO["onInterrupt"]) {
  const o = { out: "", err: "" };
  const c: ClientIO = {
    write: (s) => {
      o.out += s;
    },
    writeErr: (s) => {
      o.err += s;
    },
    readStdin: async () => "",
    env: {},
    ...(onInterrupt ? { onInterrupt } : {}),
  };
  return { o, c };
}

describe("lvsadm --trace (client loop)", () => {
  it("blocks until the count is written, then says how many frames went where", async () => {
    const file = join(dir, "count.pcapng");
    const { o, c } = io();
    const t0 = Date.now();
    const code = await runClient(
      ["--control", sock, "--trace", file, "--count", "20", "-t", `${IP.vip}:80`],
      c,
    );
    expect(o.err).toMatch(
      /^lvsadm: trace \d+ started: frames of TCP 10\.0\.0\.100:80 on lvs0, lvs1 to .*count\.pcapng, until 20 frames or 3600 s \(Ctrl-C stops it\)\n$/,
    );
    expect(o.out).toBe(`lvsadm: 20 frames written to ${file} (0 dropped)\n`);
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    const f = readPcapng(readFileSync(file));
    expect(f.packets).toHaveLength(20);
    expect(new Set(f.packets.map((p) => p.ifId))).toEqual(new Set([0, 1]));
    expect(new Set(f.packets.map((p) => p.flags))).toEqual(new Set([1, 2]));
  });

  it("an interrupt sends --trace-stop; a second trace meanwhile is refused", async () => {
    const file = join(dir, "stop.pcapng");
    let interrupt: (() => void) | undefined;
    let removed = false;
    const { o, c } = io((h) => {
      interrupt = h;
      return () => {
        removed = true;
      };
    });
    const done = runClient(["--control", sock, "--trace", file, "--seconds", "60"], c);
    await new Promise((r) => setTimeout(r, 400));
    const other = io();
    expect(await runClient(["--control", sock, "--trace", join(dir, "other.pcapng")], other.c)).toBe(1);
    expect(other.o.err).toMatch(
      /^lvsadm: a trace is already running \(trace \d+ running: \d+ frames? written to .*stop\.pcapng/,
    );
    expect(interrupt).toBeDefined();
    interrupt!();
    const code = await done;
    expect(code).toBe(0);
    expect(removed).toBe(true);
    const m = /^lvsadm: (\d+) frames written to (.*) \(0 dropped\)\n$/.exec(o.out);
    expect(m?.[2]).toBe(file);
    const n = Number(m?.[1]);
    expect(n).toBeGreaterThan(10);
    expect(readPcapng(readFileSync(file)).packets).toHaveLength(n);
    const status = io();
    await runClient(["--control", sock, "--trace-status"], status.c);
    expect(status.o.out).toMatch(/^trace \d+ done \(lvsadm --trace-stop\): /);
  });

  it("without lvsd: exit status 2 and why", async () => {
    const { o, c } = io();
    expect(await runClient(["--control", join(dir, "nobody.sock"), "--trace", join(dir, "x")], c)).toBe(2);
    expect(o.err).toMatch(/^lvsadm: cannot connect to lvsd at .*nobody\.sock: no such socket/);
  });

  it("bad options are refused by lvsadm itself", async () => {
    const { o, c } = io();
    expect(await runClient(["--control", join(dir, "nobody.sock"), "--trace", "x", "--count", "-1"], c)).toBe(
      2,
    );
    expect(o.err).toBe("invalid count value `-1' specified (1 to 2147483647 frames)\n");
  });
});
