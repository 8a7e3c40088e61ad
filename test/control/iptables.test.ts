/**
 * lvs-iptables (src/control/iptables.ts): the mangle-table lines of the LVS tutorials, parsed
 * into mark rules with iptables' messages and exit codes, listed and saved as iptables 1.8.9
 * prints them, and saved/restored by lvsadm -S / -R.
 *
 * The expected listings and messages below were produced by the real iptables 1.8.9 (Debian
 * 12, `iptables-legacy` run in a throw-away network namespace, `unshare -n`) on the same
 * command lines; lvs-iptables's differ only in the program name and in listing lvsd's one chain.
 */
import { describe, expect, it } from "vitest";
import { EngineControl } from "../../src/control/adapter.js";
import { run } from "../../src/control/commands.js";
import { parseIptables, ruleSpec } from "../../src/control/iptables.js";
import { Engine } from "../../src/datapath/engine.js";
import { MarkTarget, PortWhich } from "../../src/tables/marks.js";
import { TEST_SERVICES } from "./fake.js";

const OPTS = { services: TEST_SERVICES };

function director(): EngineControl {
  const e = new Engine({ maxConns: 256, sweepPerBatch: 0 });
  e.net.addLink("eth0", new Uint8Array(6), []);
  e.net.addLink("lvs1", new Uint8Array(6), []);
  return new EngineControl(e);
}

const ipt = (t: EngineControl, line: string) =>
  run(["--iptables", ...line.split(" ").filter(Boolean)], t, "", OPTS);
const lvsadm = (t: EngineControl, line: string, stdin = "") =>
  run(line.split(" ").filter(Boolean), t, stdin, OPTS);

/** The command lines of the reference run, in order. */
const TUTORIAL =
  "-t mangle -A PREROUTING -d 192.168.0.220 -p tcp -m multiport --dports 80,443 -j MARK --set-mark 666";
const LINES = [
  TUTORIAL,
  "-t mangle -A PREROUTING -s 10.0.0.0/255.255.0.0 ! -d 10.1.2.3/24 -p udp --dport 53 -j MARK --set-mark 0x10/0xff",
  "-t mangle -A PREROUTING -i eth0 ! -p tcp -j MARK --set-xmark 5/7",
  "-t mangle -A PREROUTING -p tcp ! --dport 1000:2000 --sport 99 -j MARK --set-mark 1",
  "-t mangle -A PREROUTING -p tcp -m multiport ! --sports 1,2:9 -j MARK --set-mark 0xffffffff",
  "-t mangle -A PREROUTING -p tcp -m multiport --ports 1,2:9 -j MARK --and-mark 3",
  "-t mangle -A PREROUTING ! -i lvs+ -j MARK --or-mark 3",
  "-t mangle -A PREROUTING -j MARK --xor-mark 3",
  "-t mangle -A PREROUTING -p 17 -j MARK --set-mark 3",
  "-t mangle -A PREROUTING -p icmp -j MARK --set-mark 4",
  "-t mangle -A PREROUTING -p all -j MARK --set-mark 4",
];

// iptables-legacy -t mangle -S PREROUTING
const SAVED = `-P PREROUTING ACCEPT
-A PREROUTING -d 192.168.0.220/32 -p tcp -m multiport --dports 80,443 -j MARK --set-xmark 0x29a/0xffffffff
-A PREROUTING -s 10.0.0.0/16 ! -d 10.1.2.0/24 -p udp -m udp --dport 53 -j MARK --set-xmark 0x10/0xff
-A PREROUTING -i eth0 ! -p tcp -j MARK --set-xmark 0x5/0x7
-A PREROUTING -p tcp -m tcp --sport 99 ! --dport 1000:2000 -j MARK --set-xmark 0x1/0xffffffff
-A PREROUTING -p tcp -m multiport ! --sports 1,2:9 -j MARK --set-xmark 0xffffffff/0xffffffff
-A PREROUTING -p tcp -m multiport --ports 1,2:9 -j MARK --set-xmark 0x0/0xfffffffc
-A PREROUTING ! -i lvs+ -j MARK --set-xmark 0x3/0x3
-A PREROUTING -j MARK --set-xmark 0x3/0x0
-A PREROUTING -p udp -j MARK --set-xmark 0x3/0xffffffff
-A PREROUTING -p icmp -j MARK --set-xmark 0x4/0xffffffff
-A PREROUTING -j MARK --set-xmark 0x4/0xffffffff
`;

// iptables-legacy -t mangle -L PREROUTING -v -n
const LIST_VN = `Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)
 pkts bytes target     prot opt in     out     source               destination         
    0     0 MARK       6    --  *      *       0.0.0.0/0            192.168.0.220        multiport dports 80,443 MARK set 0x29a
    0     0 MARK       17   --  *      *       10.0.0.0/16         !10.1.2.0/24          udp dpt:53 MARK xset 0x10/0xff
    0     0 MARK      !6    --  eth0   *       0.0.0.0/0            0.0.0.0/0            MARK xset 0x5/0x7
    0     0 MARK       6    --  *      *       0.0.0.0/0            0.0.0.0/0            tcp spt:99 dpts:!1000:2000 MARK set 0x1
    0     0 MARK       6    --  *      *       0.0.0.0/0            0.0.0.0/0            multiport sports  !1,2:9 MARK or 0xffffffff
    0     0 MARK       6    --  *      *       0.0.0.0/0            0.0.0.0/0            multiport ports 1,2:9 MARK and 0x3
    0     0 MARK       0    --  !lvs+  *       0.0.0.0/0            0.0.0.0/0            MARK or 0x3
    0     0 MARK       0    --  *      *       0.0.0.0/0            0.0.0.0/0            MARK xor 0x3
    0     0 MARK       17   --  *      *       0.0.0.0/0            0.0.0.0/0            MARK set 0x3
    0     0 MARK       1    --  *      *       0.0.0.0/0            0.0.0.0/0            MARK set 0x4
    0     0 MARK       0    --  *      *       0.0.0.0/0            0.0.0.0/0            MARK set 0x4
`;

// iptables-legacy -t mangle -L PREROUTING -n --line-numbers
const LIST_N_LINES = `Chain PREROUTING (policy ACCEPT)
num  target     prot opt source               destination         
1    MARK       6    --  0.0.0.0/0            192.168.0.220        multiport dports 80,443 MARK set 0x29a
2    MARK       17   --  10.0.0.0/16         !10.1.2.0/24          udp dpt:53 MARK xset 0x10/0xff
`;

// iptables-legacy -t mangle -L PREROUTING (names from the test's services table)
const LIST_NAMES = `Chain PREROUTING (policy ACCEPT)
target     prot opt source               destination         
MARK       tcp  --  anywhere             192.168.0.220        multiport dports http,https MARK set 0x29a
MARK       udp  --  10.0.0.0/16         !10.1.2.0/24          udp dpt:domain MARK xset 0x10/0xff
`;

describe("lvs-iptables: the tutorials' rules", () => {
  it("adds every kind of rule and prints -S exactly as iptables does", () => {
    const t = director();
    for (const l of LINES) expect(ipt(t, l), l).toEqual({ stdout: "", stderr: "", code: 0 });
    expect(ipt(t, "-t mangle -S")).toEqual({ stdout: SAVED, stderr: "", code: 0 });
    expect(ipt(t, "-t mangle -S PREROUTING").stdout).toBe(SAVED);
  });

  it("lists -L -v -n with counters, and -L -n --line-numbers / -L with names, as iptables", () => {
    const t = director();
    for (const l of LINES) ipt(t, l);
    expect(ipt(t, "-t mangle -L PREROUTING -v -n").stdout).toBe(LIST_VN);
    expect(ipt(t, "-t mangle -L -v -n").stdout).toBe(LIST_VN);
    const t2 = director();
    for (const l of LINES.slice(0, 2)) ipt(t2, l);
    expect(ipt(t2, "-t mangle -L PREROUTING -n --line-numbers").stdout).toBe(LIST_N_LINES);
    expect(ipt(t2, "-t mangle -L").stdout).toBe(LIST_NAMES);
  });

  it("parses each option into the rule's fields", () => {
    const p = parseIptables(
      "-t mangle -A PREROUTING ! -s 10.1.0.0/16 -d 10.0.0.100 ! -i lvs+ -p udp ! --sport 1000: --dport :53 -m multiport --ports 7,9:11 -j MARK --set-mark 0x10/0xf0".split(
        " ",
      ),
      TEST_SERVICES,
    );
    if (!("cmd" in p) || p.cmd.kind !== "append") throw new Error(JSON.stringify(p));
    const r = p.cmd.rule;
    expect(p.table).toBe("mangle");
    expect(r).toMatchObject({
      src: 0x0a010000,
      srcMask: 0xffff0000,
      srcNeg: true,
      dst: 0x0a000064,
      dstMask: 0xffffffff,
      dstNeg: false,
      iface: "lvs+",
      ifaceNeg: true,
      proto: 17,
      protoNeg: false,
      target: MarkTarget.MARK,
      value: 0x10,
      mask: 0xf0,
    });
    expect(r.ports).toEqual([
      { match: "udp", which: PortWhich.SRC, neg: true, ranges: [[1000, 65535]] },
      { match: "udp", which: PortWhich.DST, neg: false, ranges: [[0, 53]] },
      {
        match: "multiport",
        which: PortWhich.EITHER,
        neg: false,
        ranges: [
          [7, 7],
          [9, 11],
        ],
      },
    ]);
    // long option names, --opt=value, port names and a dotted mask
    const q = parseIptables(
      "--table=mangle --append PREROUTING --destination 10.0.0.0/255.255.255.0 --protocol tcp --destination-port http --jump MARK --set-xmark 1".split(
        " ",
      ),
      TEST_SERVICES,
    );
    if (!("cmd" in q) || q.cmd.kind !== "append") throw new Error(JSON.stringify(q));
    expect(ruleSpec(q.cmd.rule)).toBe(
      " -d 10.0.0.0/24 -p tcp -m tcp --dport 80 -j MARK --set-xmark 0x1/0xffffffff",
    );
  });

  it("deletes by rule and by number, inserts at a position, flushes, and keeps counters with their rules", () => {
    const t = director();
    ipt(t, TUTORIAL);
    ipt(t, "-t mangle -A PREROUTING -p udp -j MARK --set-mark 7");
    ipt(t, "-t mangle -I PREROUTING 2 -p tcp --dport 22 -j ACCEPT");
    ipt(t, "-t mangle -I PREROUTING -j RETURN -s 1.2.3.4");
    expect(ipt(t, "-t mangle -S").stdout).toBe(
      `-P PREROUTING ACCEPT
-A PREROUTING -s 1.2.3.4/32 -j RETURN
-A PREROUTING -d 192.168.0.220/32 -p tcp -m multiport --dports 80,443 -j MARK --set-xmark 0x29a/0xffffffff
-A PREROUTING -p tcp -m tcp --dport 22 -j ACCEPT
-A PREROUTING -p udp -j MARK --set-xmark 0x7/0xffffffff
`,
    );
    // counters follow their rule when another is deleted
    const prog = t.engine.marks.program;
    prog.pkts[1] = 5;
    prog.bytes[1] = 300;
    expect(ipt(t, "-t mangle -D PREROUTING 1").code).toBe(0);
    expect(ipt(t, "-t mangle -L -v -x -n").stdout.split("\n")[2]).toMatch(/^ {7}5 {6}300 MARK {7}6 /);
    expect(ipt(t, TUTORIAL.replace("-A", "-D"))).toEqual({ stdout: "", stderr: "", code: 0 });
    expect(ipt(t, TUTORIAL.replace("-A", "-D"))).toEqual({
      stdout: "",
      stderr: "lvs-iptables: Bad rule (does a matching rule exist in that chain?).\n",
      code: 1,
    });
    expect(ipt(t, "-t mangle -D PREROUTING 9")).toEqual({
      stdout: "",
      stderr: "lvs-iptables: Index of deletion too big.\n",
      code: 1,
    });
    expect(ipt(t, "-t mangle -I PREROUTING 9 -j ACCEPT").code).toBe(1);
    expect(t.engine.marks.length).toBe(2);
    expect(ipt(t, "-t mangle -F").code).toBe(0);
    expect(ipt(t, "-t mangle -S").stdout).toBe("-P PREROUTING ACCEPT\n");
    expect(ipt(t, "-t mangle -P PREROUTING ACCEPT").code).toBe(0);
  });

  it("-Z and -L -Z zero the counters, the policy's too", () => {
    const t = director();
    ipt(t, TUTORIAL);
    const p = t.engine.marks.program;
    p.pkts[0] = 123456;
    p.bytes[0] = 98765432;
    p.policy[0] = 7;
    p.policy[1] = 700;
    const listed = ipt(t, "-t mangle -L -v -n -Z").stdout;
    expect(listed.split("\n")[0]).toBe("Chain PREROUTING (policy ACCEPT 7 packets, 700 bytes)");
    // xtables_print_num: K above 99999 (rounded), M above 9999K
    expect(listed.split("\n")[2]).toMatch(/^ 123K {3}99M MARK/);
    expect(ipt(t, "-t mangle -L -v -n").stdout.split("\n")[0]).toBe(
      "Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)",
    );
    p.pkts[0] = 1;
    expect(ipt(t, "-t mangle -Z PREROUTING").code).toBe(0);
    expect(t.engine.marks.list()[0]!.pkts).toBe(0);
  });
});

describe("lvs-iptables: mistakes get iptables' messages and exit codes", () => {
  const TRY = "Try `lvs-iptables -h' or 'lvs-iptables --help' for more information.\n";
  const P = "lvs-iptables v0.1.0 (lvs-ts): ";
  // [command line, message after the prefix (iptables 1.8.9's), exit status]
  const CASES: [string, string, number][] = [
    [
      "-t mangle -A PREROUTING -p tcp --dprt 80 -j MARK --set-mark 1",
      `${P}unknown option "--dprt"\n${TRY}`,
      2,
    ],
    ["-t mangle -A PREROUTING --dport 80 -j MARK --set-mark 1", `${P}unknown option "--dport"\n${TRY}`, 2],
    [
      "-t mangle -A PREROUTING ! -p tcp --dport 80 -j MARK --set-mark 1",
      `${P}unknown option "--dport"\n${TRY}`,
      2,
    ],
    [
      "-t mangle -A PREROUTING -p udp -m multiport --dports 80,x -j MARK --set-mark 1",
      `${P}invalid port/service \`x' specified\n${TRY}`,
      2,
    ],
    [
      "-t mangle -A PREROUTING -m multiport --dports 80 -j MARK --set-mark 1",
      `${P}multiport needs \`-p tcp', \`-p udp', \`-p udplite', \`-p sctp' or \`-p dccp'\n${TRY}`,
      2,
    ],
    [
      "-t mangle -A PREROUTING ! -p tcp -m multiport --dports 80,443 -j MARK --set-mark 1",
      `${P}multiport only works with TCP, UDP, UDPLITE, SCTP and DCCP\n${TRY}`,
      2,
    ],
    [
      "-t mangle -A PREROUTING -p tcp --dport 99999 -j MARK --set-mark 1",
      `${P}invalid port/service \`99999' specified\n${TRY}`,
      2,
    ],
    [
      "-t mangle -A PREROUTING -p tcp --dport 5:3 -j MARK --set-mark 1",
      `${P}invalid portrange (min > max)\n${TRY}`,
      2,
    ],
    [
      "-t mangle -A PREROUTING -p foo -j MARK --set-mark 1",
      `${P}unknown protocol "foo" specified\n${TRY}`,
      2,
    ],
    [
      "-t mangle -A PREROUTING -d 1.2.3.400 -j MARK --set-mark 1",
      `${P}host/network \`1.2.3.400' not found\n${TRY}`,
      2,
    ],
    [
      "-t mangle -A PREROUTING -d 1.2.3.4/33 -j MARK --set-mark 1",
      `${P}invalid mask \`33' specified\n${TRY}`,
      2,
    ],
    [
      "-t mangle -A PREROUTING -j MARK --set-mark abc",
      `${P}MARK: bad integer value for option "--set-mark", or out of range.\n\n${TRY}`,
      2,
    ],
    [
      "-t mangle -A PREROUTING -j MARK --set-mark 0x100000000",
      `${P}MARK: bad integer value for option "--set-mark", or out of range.\n\n${TRY}`,
      2,
    ],
    [
      "-t mangle -A PREROUTING -j MARK",
      `${P}MARK: One of the --set-xmark, --{and,or,xor,set}-mark options is required\n${TRY}`,
      2,
    ],
    [
      "-t mangle -A PREROUTING -j MARK --set-mark 1 --set-mark 2",
      `${P}MARK: option "--set-mark" can only be used once.\n\n${TRY}`,
      2,
    ],
    [
      "-t mangle -A PREROUTING -j MARK --set-mark 1 --set-xmark 2",
      `${P}MARK: option "--set-xmark" cannot be used together with "--set-mark".\n\n${TRY}`,
      2,
    ],
    ["-t mangle -A PREROUTNG -j MARK --set-mark 1", "lvs-iptables: No chain/target/match by that name.\n", 1],
    ["-t mangle -A PREROUTING ! -j MARK --set-mark 1", `${P}cannot have ! before -j\n${TRY}`, 2],
    [
      "-t mangle -A PREROUTING -s 1.1.1.1 -s 2.2.2.2 -j ACCEPT",
      `${P}multiple -s flags not allowed\n${TRY}`,
      2,
    ],
    ["-t mangle -A PREROUTING -s ! 1.1.1.1 -j ACCEPT", `Bad argument \`1.1.1.1'\n${TRY}`, 2],
    ["-t mangle -A PREROUTING ! ! -s 1.1.1.1 -j ACCEPT", `${P}multiple consecutive ! not allowed\n${TRY}`, 2],
    [
      "-t mangle -A PREROUTING -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16 -j ACCEPT",
      `${P}too many ports specified\n${TRY}`,
      2,
    ],
    [
      "-t mangle -A PREROUTING -p tcp -m multiport --dports 1:2,3:4,5:6,7:8,9:10,11:12,13:14,15:16 -j ACCEPT",
      `${P}too many ports specified\n${TRY}`,
      2,
    ],
    [
      "-t mangle -A PREROUTING -p tcp -m multiport --dports 1 --sports 2 -j ACCEPT",
      `${P}multiport: option "--source-ports" cannot be used together with "--destination-ports".\n\n${TRY}`,
      2,
    ],
    ["-t mangle -A PREROUTING -p tcp -m multiport -j ACCEPT", `${P}multiport expection an option\n${TRY}`, 2],
    ["-t mangle -A PREROUTING -o eth0 -j ACCEPT", `${P}Can't use -o with PREROUTING\n\n${TRY}`, 2],
    [
      "-t mangle -A PREROUTING -p tcp -m foo -j ACCEPT",
      `${P}Couldn't load match \`foo':No such file or directory\n\n${TRY}`,
      2,
    ],
    ["-t mangle -I PREROUTING 0 -j ACCEPT", `${P}Invalid rule number \`0'\n${TRY}`, 2],
    ["-t mangle", `${P}no command specified\n${TRY}`, 2],
    ["-t mangle -A PREROUTING -j MARK --set-mark 1 extra", `Bad argument \`extra'\n${TRY}`, 2],
    ["-t mangle -A PREROUTING -d", `${P}option "-d" requires an argument\n${TRY}`, 2],
    ["-t mangle -F FOO", "lvs-iptables: No chain/target/match by that name.\n", 1],
  ];
  for (const [line, stderr, code] of CASES) {
    it(line, () => {
      const t = director();
      expect(ipt(t, line)).toEqual({ stdout: "", stderr, code });
      expect(t.engine.marks.length).toBe(0);
    });
  }

  it("says what lvsd lacks: other tables (exit 3), other chains, other targets, DROP policy", () => {
    const t = director();
    expect(ipt(t, "-A PREROUTING -j MARK --set-mark 1")).toMatchObject({
      code: 3,
      stderr: expect.stringContaining("table `filter': lvsd has the mangle table only (-t mangle)"),
    });
    expect(ipt(t, "-t nat -L").code).toBe(3);
    expect(ipt(t, "-t mangle -A INPUT -j MARK --set-mark 1")).toEqual({
      stdout: "",
      stderr:
        "lvs-iptables: chain `INPUT' is not supported: lvsd has the mangle table's PREROUTING chain only.\n",
      code: 1,
    });
    expect(ipt(t, "-t mangle -A PREROUTING -j DROP")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("DROP"),
    });
    expect(ipt(t, "-t mangle -P PREROUTING DROP").code).toBe(1);
    expect(t.engine.marks.length).toBe(0);
  });

  it("-h and -V", () => {
    const t = director();
    expect(ipt(t, "-h").stdout).toMatch(/^Usage: lvs-iptables -t mangle -\[ACD\] PREROUTING/m);
    expect(ipt(t, "-V").stdout).toMatch(/^lvs-iptables v0\.1\.0 \(lvs-ts; iptables v1\.8\.9 compatible\)$/m);
  });
});

describe("saved and restored with the service table (lvsadm -S / -R)", () => {
  it("lvsadm -S prints the rules after the services; -R on a fresh director gives the same rules and services", () => {
    const t = director();
    expect(lvsadm(t, "-A -f 666 -s rr -p").code).toBe(0);
    expect(lvsadm(t, "-a -f 666 -r 192.168.10.1:0 -g").code).toBe(0);
    for (const l of LINES.slice(0, 4)) ipt(t, l);
    const saved = lvsadm(t, "-Sn").stdout;
    expect(saved).toBe(`-A -f 666 -s rr -p 360
-a -f 666 -r 192.168.10.1:0 -g -w 1
--iptables -t mangle -F PREROUTING
${SAVED.split("\n")
  .slice(1, 5)
  .map((l) => `--iptables -t mangle ${l}\n`)
  .join("")}`);
    const u = director();
    expect(lvsadm(u, "-R", saved)).toEqual({ stdout: "", stderr: "", code: 0 });
    expect(lvsadm(u, "-Sn").stdout).toBe(saved);
    // restoring again replaces the rules instead of doubling them
    expect(lvsadm(u, "-R", saved).code).toBe(0);
    expect(u.engine.marks.length).toBe(4);
    // a director without rules saves no iptables line
    expect(lvsadm(director(), "-Sn").stdout).toBe("");
  });

  it("lvs-iptables -S output replays line by line", () => {
    const t = director();
    for (const l of LINES) ipt(t, l);
    const u = director();
    for (const l of ipt(t, "-t mangle -S").stdout.trimEnd().split("\n"))
      expect(ipt(u, `-t mangle ${l}`).code, l).toBe(0);
    expect(ipt(u, "-t mangle -S").stdout).toBe(SAVED);
  });

  it("a MARK rule's single destination is answered as a VIP (ARP, ping), and no longer once the rule is gone", () => {
    const t = director();
    const vip = 0xc0a800dc; // 192.168.0.220
    expect(t.table.isVip(vip)).toBe(false);
    const gen = t.table.generation;
    ipt(t, TUTORIAL);
    expect(t.table.isVip(vip)).toBe(true);
    expect(t.table.vips()).toContain(vip);
    expect(t.table.generation).toBeGreaterThan(gen); // lvsd announces it with gratuitous ARP
    ipt(t, "-t mangle -A PREROUTING -d 10.9.0.0/16 -j MARK --set-mark 1");
    expect(t.table.isVip(0x0a090001)).toBe(false); // networks are not VIPs
    ipt(t, "-t mangle -F");
    expect(t.table.isVip(vip)).toBe(false);
  });
});
