/**
 * The fuzz job (issue "Hardening", item 7; docs/security.md): fast-check properties that feed
 * random and mutated input to what reads from outside, time-boxed for CI (well under 60 s on the
 * 2-vCPU VM; `FUZZ_RUNS=N npm run fuzz` runs N cases a property instead):
 *
 * - frames through a Director with in-memory links (valid frames of every kind lvsd handles,
 *   mutated byte by byte, truncated and extended, and random bytes): nothing throws, drop counters
 *   stay finite, the connection table and the dests' counters stay consistent, and a legitimate
 *   connection still goes through afterwards;
 * - the control protocol (request lines lvsd reads from its socket): random text, random JSON and
 *   random ipvsadm-like command lines never throw, always get an exit status, and leave a table
 *   that still lists and saves;
 * - the keepalived.conf reader: mutated configurations either load or fail with a ConfigError
 *   (file and line), never another exception.
 *
 * The VRRP and sync message parsers have their own properties beside their unit tests
 * (test/datapath/packet/vrrp.test.ts, test/control/sync/wire.test.ts).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EngineControl } from "../../src/control/adapter.js";
import { run } from "../../src/control/commands.js";
import { parseConfigText } from "../../src/control/config/parser.js";
import { ConfigError } from "../../src/control/config/types.js";
import { handleRequestLine } from "../../src/control/server.js";
import { CONN_F_USED } from "../../src/datapath/conntrack/table.js";
import { Director } from "../../src/datapath/director.js";
import { Engine } from "../../src/datapath/engine.js";
import { MemoryLink } from "../../src/datapath/io/memory.js";
import { eth } from "../../src/datapath/packet/build.js";
import { TCP_ACK, TCP_SYN } from "../../src/datapath/packet/view.js";
import { ipToU32, macToBytes } from "../../src/lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../src/lib/proto.js";
import { FwdMethod } from "../../src/tables/model.js";

const RUNS = Number(process.env.FUZZ_RUNS ?? 0) || undefined;
const runs = (ci: number) => ({ numRuns: RUNS ?? ci });

const MAC = {
  out: "02:00:00:00:00:01",
  in: "02:00:00:00:01:01",
  client: "02:00:00:00:00:07",
  rs: "02:00:00:00:01:11",
};
const IP = {
  out: "10.0.0.1",
  in: "192.168.10.254",
  vip: "10.0.0.100",
  client: "10.0.0.7",
  rs: "192.168.10.1",
};

/** A NAT director on two memory links with a TCP and a UDP service, FULLNAT and DR dests too. */
function rig(synProxy = false): { e: Engine; d: Director; out: MemoryLink; inl: MemoryLink } {
  const e = new Engine({ maxConns: 1024, sweepPerBatch: 16 });
  const d = new Director(e, 64);
  const out = new MemoryLink("out0", macToBytes(MAC.out));
  const inl = new MemoryLink("in0", macToBytes(MAC.in));
  d.attach(out);
  d.attach(inl);
  e.net.addLink("out0", macToBytes(MAC.out), [{ addr: ipToU32(IP.out), prefix: 24 }]);
  e.net.addLink("in0", macToBytes(MAC.in), [{ addr: ipToU32(IP.in), prefix: 24 }]);
  e.net.neigh.learn(ipToU32(IP.client), macToBytes(MAC.client), 0, 0, 0, true);
  e.net.neigh.learn(ipToU32(IP.rs), macToBytes(MAC.rs), 0, 1, 0, true);
  const tcp = { proto: IPPROTO_TCP, addr: ipToU32(IP.vip), port: 80 };
  const udp = { proto: IPPROTO_UDP, addr: ipToU32(IP.vip), port: 53 };
  e.table.addService(tcp, { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff, synProxy });
  e.table.addService(udp, { sched: "wlc", flags: 0, timeout: 0, netmask: 0xffffffff });
  const dest = (fwd: FwdMethod, port: number) => ({
    addr: ipToU32(IP.rs),
    port,
    weight: 1,
    fwd,
    uThreshold: 0,
    lThreshold: 0,
  });
  e.table.addDest(tcp, dest(FwdMethod.MASQ, 8080));
  e.table.addDest(udp, dest(FwdMethod.MASQ, 5353));
  return { e, d, out, inl };
}

/** Valid frames of the kinds lvsd handles, to mutate. */
function seeds(): Uint8Array[] {
  const c = eth({ src: MAC.client, dst: MAC.out });
  const r = eth({ src: MAC.rs, dst: MAC.in });
  return [
    c.ipv4({ src: IP.client, dst: IP.vip }).tcp({ sport: 40000, dport: 80, flags: TCP_SYN }).build(),
    c
      .ipv4({ src: IP.client, dst: IP.vip })
      .tcp({ sport: 40000, dport: 80, flags: TCP_ACK })
      .payload("GET /")
      .build(),
    r
      .ipv4({ src: IP.rs, dst: IP.client })
      .tcp({ sport: 8080, dport: 40000, flags: TCP_SYN | TCP_ACK })
      .build(),
    c.ipv4({ src: IP.client, dst: IP.vip }).udp({ sport: 5000, dport: 53 }).payload("query").build(),
    c.ipv4({ src: IP.client, dst: IP.vip }).icmp({ type: 8, code: 0, id: 1, seq: 1 }).payload("ping").build(),
    eth({ src: MAC.client, dst: "ff:ff:ff:ff:ff:ff" })
      .arp({ op: 1, sha: MAC.client, spa: IP.client, tha: "00:00:00:00:00:00", tpa: IP.vip })
      .build(),
    eth({ src: MAC.client, dst: "01:00:5e:00:00:12" })
      .ipv4({ src: IP.client, dst: "224.0.0.18", ttl: 255, proto: 112 })
      .payload(new Uint8Array([0x21, 1, 100, 1, 0, 1, 0, 0, 10, 0, 0, 100]))
      .build(),
  ];
}

const frameArb = fc.oneof(
  // a valid frame with a few bytes changed
  fc.record({
    seed: fc.nat(63),
    edits: fc.array(fc.record({ at: fc.nat(200), v: fc.integer({ min: 0, max: 255 }) }), { maxLength: 6 }),
  }),
  // a valid frame cut short or lengthened
  fc.record({ seed: fc.nat(63), len: fc.integer({ min: 0, max: 1600 }) }),
  // random bytes
  fc.uint8Array({ minLength: 0, maxLength: 200 }),
);

function materialise(x: unknown, base: Uint8Array[]): Uint8Array {
  if (x instanceof Uint8Array) return x;
  const o = x as { seed: number; edits?: { at: number; v: number }[]; len?: number };
  const f = base[o.seed % base.length]!;
  if (o.len !== undefined) {
    const g = new Uint8Array(o.len);
    g.set(f.subarray(0, Math.min(o.len, f.length)));
    return g;
  }
  const g = f.slice();
  for (const e of o.edits ?? []) if (g.length > 0) g[e.at % g.length] = e.v;
  return g;
}

/** The connection table and the dests' counters agree (what a half-applied change would break). */
function consistent(e: Engine): void {
  let used = 0;
  for (let i = 0; i < e.ct.capacity; i++) if ((e.ct.flags[i]! & CONN_F_USED) !== 0) used++;
  expect(used).toBe(e.ct.count);
  let active = 0;
  let inactive = 0;
  for (const s of e.table.list())
    for (const d of s.dests) {
      expect(d.activeConns).toBeGreaterThanOrEqual(0);
      expect(d.inactConns).toBeGreaterThanOrEqual(0);
      active += d.activeConns;
      inactive += d.inactConns;
    }
  expect(active + inactive).toBeLessThanOrEqual(e.ct.count);
}

describe("fuzz: frames through a Director", () => {
  it("never throws, keeps the table and the counters consistent, and forwards a good connection after", () => {
    const base = seeds();
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 40 }), fc.boolean(), (xs, inside) => {
        const { e, d, out, inl } = rig();
        const link = inside ? inl : out;
        for (const x of xs) link.inject(materialise(x, base));
        d.drain(1000);
        consistent(e);
        expect(e.drops.every((n) => Number.isFinite(n) && n >= 0)).toBe(true);
        // a legitimate connection still goes through
        out.inject(base[0]!.slice());
        const before = inl.sent.length;
        d.drain(2000);
        expect(inl.sent.length).toBe(before + 1);
      }),
      runs(3000),
    );
  });
});

describe("fuzz: frames through a Director with the SYN proxy", () => {
  /** SYN -> cookie SYN-ACK -> ACK: a connection waiting for its server's SYN-ACK. Returns the cookie. */
  function pending(out: MemoryLink, inl: MemoryLink, d: Director, sport: number): number {
    const c = eth({ src: MAC.client, dst: MAC.out }).ipv4({ src: IP.client, dst: IP.vip });
    out.inject(c.tcp({ sport, dport: 80, seq: 999, flags: TCP_SYN, mss: 1460 }).build());
    d.drain(1000);
    const sa = out.sent.at(-1)!;
    const cookie = new DataView(sa.buffer, sa.byteOffset).getUint32(14 + 20 + 4);
    const before = inl.sent.length;
    out.inject(
      eth({ src: MAC.client, dst: MAC.out })
        .ipv4({ src: IP.client, dst: IP.vip })
        .tcp({ sport, dport: 80, seq: 1000, ack: cookie + 1, flags: TCP_ACK })
        .build(),
    );
    d.drain(1000);
    expect(inl.sent.length).toBe(before + 1); // the SYN to the real server
    return cookie;
  }

  it("never throws, keeps the table consistent, and still proxies a good connection after", () => {
    const base = seeds();
    // the real server's answers to the pending connection (port 40000), to mutate
    const r = eth({ src: MAC.rs, dst: MAC.in }).ipv4({ src: IP.rs, dst: IP.client });
    base.push(r.tcp({ sport: 8080, dport: 40000, seq: 5, ack: 1000, flags: TCP_SYN | TCP_ACK }).build());
    base.push(r.tcp({ sport: 8080, dport: 40000, seq: 0, ack: 1000, flags: 0x14 }).build());
    fc.assert(
      fc.property(fc.array(frameArb, { minLength: 1, maxLength: 40 }), fc.boolean(), (xs, inside) => {
        const { e, d, out, inl } = rig(true);
        pending(out, inl, d, 40000);
        const link = inside ? inl : out;
        for (const x of xs) link.inject(materialise(x, base));
        d.drain(1000);
        consistent(e);
        expect(e.drops.every((n) => Number.isFinite(n) && n >= 0)).toBe(true);
        // a legitimate connection is still proxied: cookie, then the SYN to the real server
        pending(out, inl, d, 41000);
      }),
      runs(400),
    );
  });
});

const WORDS = [
  "-A",
  "-E",
  "-D",
  "-a",
  "-e",
  "-d",
  "-C",
  "-L",
  "-l",
  "-n",
  "-c",
  "-Z",
  "-S",
  "-R",
  "-t",
  "-u",
  "-f",
  "-r",
  "-s",
  "-p",
  "-M",
  "-w",
  "-x",
  "-y",
  "-m",
  "-g",
  "-i",
  "-b",
  "--fullnat",
  "--stats",
  "--rate",
  "--timeout",
  "--set",
  "--sysctl",
  "--drops",
  "--links",
  "--sync",
  "--add-laddr",
  "--del-laddr",
  "--get-laddr",
  "-z",
  "--proxy-protocol",
  "--start-daemon",
  "--stop-daemon",
  "--daemon",
  "--health",
  "--vrrp",
  "--trace-status",
  "--exact",
  "--nosort",
  "--persistent-conn",
  "--thresholds",
  "-h",
  "-v",
  "10.0.0.100:80",
  "10.0.0.100",
  "10.0.0.100:0",
  "192.168.10.1:8080",
  "0.0.0.0:80",
  "224.0.0.1:80",
  "1",
  "0",
  "65535",
  "65536",
  "-1",
  "rr",
  "wlc",
  "sh",
  "mh",
  "nosuch",
  "v1",
  "v2",
  "master",
  "backup",
  "drop_entry=1",
  "amemthresh=5",
  "sync_threshold=3,0",
  "",
  " ",
  "\u0000",
  "é",
  "999999999999",
];

const argvArb = fc.array(fc.oneof(fc.constantFrom(...WORDS), fc.string({ maxLength: 12 })), {
  maxLength: 12,
});

describe("fuzz: the control protocol", () => {
  it("request lines of any shape get an answer with an exit status; the table stays usable", () => {
    const { e } = rig();
    const target = new EngineControl(e);
    const line = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.json({ maxDepth: 3 }),
      argvArb.map((argv) => JSON.stringify({ argv })),
      fc
        .tuple(argvArb, fc.string({ maxLength: 300 }))
        .map(([argv, stdin]) => JSON.stringify({ argv: ["-R", ...argv], stdin })),
      fc.tuple(argvArb, fc.anything()).map(([argv, stdin]) => JSON.stringify({ argv, stdin, stream: true })),
    );
    fc.assert(
      fc.property(line, (l) => {
        const r = handleRequestLine(l, target);
        expect(Number.isInteger(r.code)).toBe(true);
        expect(typeof r.stdout).toBe("string");
        expect(typeof r.stderr).toBe("string");
        let pieces = 0;
        if (r.more) for (let n = r.more.next(); n.done !== true; n = r.more.next()) pieces++;
        expect(pieces).toBeGreaterThanOrEqual(0);
      }),
      runs(6000),
    );
    // whatever the commands did, the table lists, saves and restores as ipvsadm's
    const saved = run(["-S", "-n"], target);
    expect(saved.code).toBe(0);
    expect(run(["-C"], target).code).toBe(0);
    expect(run(["-R"], target, saved.stdout).code).toBe(0);
    expect(run(["-S", "-n"], target).stdout).toBe(saved.stdout);
    expect(run(["-Ln"], target).code).toBe(0);
  });
});

const CONFIG = `global_defs {
  router_id lvs1
}
$PORT=80
virtual_server_group web {
  10.0.0.100 80
  10.0.0.101-103 443
}
virtual_server 10.0.0.100 \${PORT} {
  delay_loop 6
  lb_algo wrr
  lb_kind NAT
  persistence_timeout 50
  protocol TCP
  quorum 1
  sorry_server 192.168.10.99 80
  real_server 192.168.10.1 80 {
    weight 3
    inhibit_on_failure
    HTTP_GET {
      url {
        path /health
        status_code 200
      }
      connect_timeout 3
      retry 2
    }
  }
  ~SEQ(N, 2, 3) real_server 192.168.10.$N 80 { }
}
virtual_server fwmark 1 {
  lb_algo rr
  lb_kind DR
  real_server 192.168.10.5 0 {
    weight 1
    TCP_CHECK {
      connect_timeout 2
    }
  }
}
vrrp_instance VI_1 {
  state BACKUP
  interface out0
  virtual_router_id 51
  priority 100
  advert_int 1
  authentication {
    auth_type PASS
    auth_pass secret
  }
  virtual_ipaddress {
    10.0.0.100/24
  }
}
`;

describe("fuzz: keepalived.conf", () => {
  it("a mutated configuration loads or fails with a ConfigError naming file and line", () => {
    expect(parseConfigText(CONFIG, "k.conf", "/tmp").virtualServers.length).toBeGreaterThan(0);
    const edit = fc.oneof(
      fc.record({ kind: fc.constant("del" as const), at: fc.nat(), n: fc.integer({ min: 1, max: 20 }) }),
      fc.record({
        kind: fc.constant("ins" as const),
        at: fc.nat(),
        s: fc.constantFrom(
          "{",
          "}",
          '"',
          "\\",
          "$",
          "~SEQ(",
          "@x ",
          "include ",
          "\n",
          "#",
          "!",
          "65536",
          "-1",
          "0.0.0.0",
          "fwmark",
        ),
      }),
      fc.record({ kind: fc.constant("rnd" as const), at: fc.nat(), s: fc.string({ maxLength: 8 }) }),
    );
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 5 }), (edits) => {
        let t = CONFIG;
        for (const e of edits) {
          const at = e.at % (t.length + 1);
          t = e.kind === "del" ? t.slice(0, at) + t.slice(at + e.n) : t.slice(0, at) + e.s + t.slice(at);
        }
        try {
          parseConfigText(t, "k.conf", "/nonexistent-dir");
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
          expect((err as ConfigError).message).toMatch(/^k\.conf:\d+: |^\/nonexistent-dir|include/);
        }
      }),
      runs(3000),
    );
  });
});
