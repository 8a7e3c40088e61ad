/**
 * Firewall-mark services with traffic: frames through an Engine whose mark rules come from
 * lvs-iptables lines, checked against the kernel's ip_vs_service_find (the mark's service
 * first), ip_vs_sched_persist (one template per client and mark, protocol IP, port 0, so HTTP
 * and HTTPS of one client stick together) and ip_vs_schedule (dest port 0 keeps the packet's
 * port; a non-persistent service maps every port to a dest's non-zero port).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EngineControl } from "../../../src/control/adapter.js";
import { run as runCmd } from "../../../src/control/commands.js";
import { HealthManager } from "../../../src/control/health/manager.js";
import type { ConnEntry } from "../../../src/control/target.js";
import type { Engine } from "../../../src/datapath/engine.js";
import { eth } from "../../../src/datapath/packet/build.js";
import { TCP_SYN } from "../../../src/datapath/packet/view.js";
import { ipToU32, u32ToIp } from "../../../src/lib/addr.js";
import { TEST_SERVICES } from "../../control/fake.js";
import { addNatDest, addService, IN, IP, MAC, natEngine, OUT, run, tcpKey } from "./helpers.js";

const TUTORIAL = `-t mangle -A PREROUTING -d ${IP.vip} -p tcp -m multiport --dports 80,443 -j MARK --set-mark 666`;

function cmd(t: EngineControl, line: string): string {
  const r = runCmd(line.split(" "), t, "", { services: TEST_SERVICES });
  expect(r, line).toMatchObject({ code: 0, stderr: "" });
  return r.stdout;
}

function syn(o: { src?: string; sport?: number; dport?: number; proto?: "tcp" | "udp" } = {}): Uint8Array {
  const f = eth({ src: MAC.client, dst: MAC.dirOut }).ipv4({ src: o.src ?? IP.client, dst: IP.vip });
  return (
    o.proto === "udp"
      ? f.udp({ sport: o.sport ?? 40000, dport: o.dport ?? 53 }).payload("q")
      : f.tcp({ sport: o.sport ?? 40000, dport: o.dport ?? 80, flags: TCP_SYN })
  ).build();
}

/** A NAT director with `-A -f 666` (persistent or not) and two real servers on `rsPort`. */
function director(persist: boolean, rsPort = 0): { e: Engine; t: EngineControl } {
  const e = natEngine();
  const t = new EngineControl(e);
  cmd(t, `-A -f 666 -s rr${persist ? " -p" : ""}`);
  cmd(t, `-a -f 666 -r ${IP.rs1}:${rsPort} -m`);
  cmd(t, `-a -f 666 -r ${IP.rs2}:${rsPort} -m`);
  cmd(t, `--iptables ${TUTORIAL}`);
  return { e, t };
}

/** Connections (not templates) by client port: where each went. */
function conns(t: EngineControl): ConnEntry[] {
  return t.conns().filter((c) => !c.template);
}

describe("fwmark services receive the packets lvs-iptables marks", () => {
  it("HTTP and HTTPS from one client go to one real server (persistence across the mark's ports)", () => {
    const { e, t } = director(true);
    expect(run(e, syn({ sport: 40000, dport: 80 }), OUT).egress).toBe(IN);
    expect(run(e, syn({ sport: 40001, dport: 443 }), OUT).egress).toBe(IN);
    expect(run(e, syn({ sport: 40002, dport: 443 }), OUT).egress).toBe(IN);
    // another client: rr moves on to the other server, and its ports stick there too
    expect(run(e, syn({ src: IP.remote, sport: 50000, dport: 443 }), OUT).egress).toBe(IN);
    expect(run(e, syn({ src: IP.remote, sport: 50001, dport: 80 }), OUT).egress).toBe(IN);
    const byClient = new Map<string, Set<string>>();
    for (const c of conns(t)) {
      const k = u32ToIp(c.caddr);
      if (!byClient.has(k)) byClient.set(k, new Set());
      byClient.get(k)!.add(u32ToIp(c.daddr));
      // dest port 0: the packet's own port
      expect(c.dport).toBe(c.vport);
    }
    expect(byClient.get(IP.client)?.size).toBe(1);
    expect(byClient.get(IP.remote)?.size).toBe(1);
    expect([...byClient.get(IP.client)!][0]).not.toBe([...byClient.get(IP.remote)!][0]);
    // one template per client, keyed as the kernel's: protocol IP, client port 0, vaddr = the mark, vport 0
    const tpl = t.conns().filter((c) => c.template);
    expect(tpl.map((c) => [c.proto, u32ToIp(c.caddr), c.cport, c.vaddr, c.vport, c.dport]).sort()).toEqual(
      [
        [0, IP.client, 0, 666, 0, 0],
        [0, IP.remote, 0, 666, 0, 0],
      ].sort(),
    );
    // listed as ipvsadm lists them
    expect(cmd(t, "-Lnc")).toMatch(
      /^IP {2}\d\d:\d\d {2}NONE {8}10\.0\.0\.7:0 {9}0\.0\.2\.154:0 {8}192\.168\.10\.\d:0\n/m,
    );
    const ipLen = syn().length - 14; // each SYN's IP length
    const bytes = String(5 * ipLen);
    expect(cmd(t, "-Ln --stats --exact")).toMatch(new RegExp(`^FWM {2}666 +5 +5 +0 +${bytes} +0$`, "m"));
    expect(cmd(t, "-Ln")).toMatch(/^FWM {2}666 rr persistent 360\n/m);
    // the rule counted the five SYNs, and so did the policy
    const listed = cmd(t, "--iptables -t mangle -L -v -n");
    expect(listed).toMatch(new RegExp(`^ {4}5 +${bytes} MARK`, "m"));
    expect(listed).toMatch(
      new RegExp(`^Chain PREROUTING \\(policy ACCEPT 5 packets, ${bytes} bytes\\)$`, "m"),
    );
  });

  it("the mark's service comes first; unmarked packets and marks without a service use -t services", () => {
    const { e, t } = director(true);
    addService(e, tcpKey(IP.vip, 80), "rr");
    addNatDest(e, tcpKey(IP.vip, 80), IP.rs1, 8080);
    addService(e, tcpKey(IP.vip, 22), "rr");
    addNatDest(e, tcpKey(IP.vip, 22), IP.rs2, 22);
    run(e, syn({ sport: 41000, dport: 80 }), OUT); // marked: the fwmark service
    run(e, syn({ sport: 41001, dport: 22 }), OUT); // not marked: TCP 10.0.0.100:22
    expect(e.table.find(tcpKey(IP.vip, 80))!.conns).toBe(0);
    expect(e.table.find({ proto: 6, addr: 0, port: 0, fwmark: 666 })!.conns).toBe(1);
    expect(e.table.find(tcpKey(IP.vip, 22))!.conns).toBe(1);
    // a mark no service has: the packet finds TCP 10.0.0.100:80 as if unmarked
    cmd(t, "--iptables -t mangle -F");
    cmd(t, `--iptables -t mangle -A PREROUTING -d ${IP.vip} -p tcp --dport 80 -j MARK --set-mark 7`);
    run(e, syn({ sport: 41002, dport: 80 }), OUT);
    expect(e.table.find(tcpKey(IP.vip, 80))!.conns).toBe(1);
    // no rules: the fwmark service gets nothing, port 443 has no service
    cmd(t, "--iptables -t mangle -F");
    expect(run(e, syn({ sport: 41003, dport: 443 }), OUT).egress).toBe(-1);
    expect(e.table.find({ proto: 6, addr: 0, port: 0, fwmark: 666 })!.conns).toBe(1);
  });

  it("dest ports: persistent keeps the packet's port; non-persistent maps to a non-zero dest port, 0 keeps it", () => {
    const p = director(true, 8080);
    run(p.e, syn({ sport: 42000, dport: 443 }), OUT);
    expect(conns(p.t).map((c) => c.dport)).toEqual([443]);
    const n = director(false, 8080);
    run(n.e, syn({ sport: 42000, dport: 443 }), OUT);
    run(n.e, syn({ sport: 42001, dport: 80 }), OUT);
    expect(conns(n.t).map((c) => c.dport)).toEqual([8080, 8080]);
    expect(n.t.conns().some((c) => c.template)).toBe(false);
    const z = director(false, 0);
    run(z.e, syn({ sport: 42000, dport: 443 }), OUT);
    run(z.e, syn({ sport: 42001, dport: 80 }), OUT);
    expect(
      conns(z.t)
        .map((c) => c.dport)
        .sort(),
    ).toEqual([443, 80].sort());
    // non-persistent rr spreads them over both servers
    expect(new Set(conns(z.t).map((c) => c.daddr)).size).toBe(2);
  });

  it("a UDP mark rule and -i: only datagrams from the named link are marked", () => {
    const e = natEngine();
    const t = new EngineControl(e);
    cmd(t, "-A -f 53 -s rr");
    cmd(t, `-a -f 53 -r ${IP.rs1}:0 -m`);
    cmd(t, `--iptables -t mangle -A PREROUTING -i in0 -p udp --dport 53 -j MARK --set-mark 53`);
    expect(run(e, syn({ proto: "udp" }), OUT).egress).toBe(-1); // from out0: not marked, no service
    cmd(t, "--iptables -t mangle -F");
    cmd(t, `--iptables -t mangle -A PREROUTING -i out+ -p udp --dport 53 -j MARK --set-mark 53`);
    expect(run(e, syn({ proto: "udp" }), OUT).egress).toBe(IN);
    expect(conns(t).map((c) => [c.proto, c.daddr, c.dport])).toEqual([[17, ipToU32(IP.rs1), 53]]);
  });

  it("keepalived.conf: virtual_server fwmark N and a group's fwmark entry forward once lvs-iptables marks", () => {
    const e = natEngine();
    const t = new EngineControl(e);
    const dir = mkdtempSync(join(tmpdir(), "fwmark-ka-"));
    try {
      const conf = join(dir, "keepalived.conf");
      writeFileSync(
        conf,
        `virtual_server fwmark 666 {
  lb_algo rr
  lb_kind NAT
  persistence_timeout 60
  real_server ${IP.rs1} 0 {
    weight 1
  }
  real_server ${IP.rs2} 0 {
    weight 1
  }
}
virtual_server_group G {
  fwmark 7
}
virtual_server group G {
  lb_algo rr
  lb_kind NAT
  real_server ${IP.rs2} 0 {
    weight 1
  }
}
`,
      );
      const m = new HealthManager(e.table, { log: () => {} });
      expect(m.loadFile(conf)).toMatchObject({ ok: true });
      const listed = cmd(t, "-Ln");
      expect(listed).toMatch(/^FWM {2}7 rr$/m);
      expect(listed).toMatch(/^FWM {2}666 rr persistent 60$/m);
      // nothing is marked yet: nothing reaches them
      expect(run(e, syn({ sport: 43000, dport: 443 }), OUT).egress).toBe(-1);
      cmd(t, `--iptables ${TUTORIAL}`);
      cmd(t, `--iptables -t mangle -A PREROUTING -d ${IP.vip} -p udp --dport 53 -j MARK --set-mark 7`);
      expect(run(e, syn({ sport: 43001, dport: 80 }), OUT).egress).toBe(IN);
      expect(run(e, syn({ sport: 43002, dport: 443 }), OUT).egress).toBe(IN);
      expect(run(e, syn({ proto: "udp", sport: 43003 }), OUT).egress).toBe(IN);
      const c = conns(t);
      expect(new Set(c.filter((x) => x.proto === 6).map((x) => x.daddr)).size).toBe(1); // persistence
      expect(c.filter((x) => x.proto === 17).map((x) => [u32ToIp(x.daddr), x.dport])).toEqual([[IP.rs2, 53]]);
      m.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
