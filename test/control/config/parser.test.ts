/**
 * keepalived.conf parsing: a configuration written the way deployments write them (several
 * virtual servers, comments, other subsystems' blocks, includes) parsed and applied to a
 * service table; inheritance and defaults; every value type; warnings and the exact text of
 * errors for malformed files.
 */

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EngineControl } from "../../../src/control/adapter.js";
import { run } from "../../../src/control/commands.js";
import { parseConfigFile, parseConfigText, splitCommand } from "../../../src/control/config/parser.js";
import { ConfigError } from "../../../src/control/config/types.js";
import { HealthManager } from "../../../src/control/health/manager.js";
import { parseServices } from "../../../src/control/netdb.js";
import { Engine } from "../../../src/datapath/engine.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { FwdMethod } from "../../../src/tables/model.js";

const MAIN = `! Configuration File for keepalived
global_defs {
   notification_email {
     admin@example.com
   }
   router_id LVS_DEVEL
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        10.0.0.100
    }
}

# the services, one file each
include conf.d/*.conf
`;

const WEB = `virtual_server 10.0.0.100 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind NAT
    persistence_timeout 50
    persistence_granularity 255.255.255.0
    protocol TCP
    sorry_server 192.168.10.99 80

    real_server 192.168.10.1 80 {
        weight 3
        HTTP_GET {
            url {
              path /health
              status_code 200
            }
            connect_timeout 3
            retry 3
            delay_before_retry 2
        }
    }
    real_server 192.168.10.2 80 {   # the small one
        weight 1
        inhibit_on_failure
        TCP_CHECK {
            connect_port 80
            connect_timeout 3
        }
    }
}
`;

const DNS = `virtual_server 10.0.0.100 53 {
    delay_loop 10
    lvs_sched rr
    protocol UDP
    ops
    real_server 192.168.10.3 53 {
        uthreshold 100
        lthreshold 50
        UDP_CHECK {
            payload 00 01
            require_reply
        }
    }
    real_server 192.168.10.4 53 {
        MISC_CHECK {
            misc_path "/usr/local/bin/check-dns.sh 192.168.10.4"
            misc_dynamic
        }
    }
}
`;

const DR = `! direct routing, with its checks on another port
virtual_server 10.0.0.101 443
{
    lvs_sched sh
    sh-port
    lvs_method DR
    real_server 192.168.10.5 443 {
        weight 2
        SSL_GET {
            url {
                path /
                digest 9B3A0C85A887A256D6939DA88AABD8CD
            }
        }
    }
    real_server 192.168.10.6 443 {
        lvs_method TUN
        weight 2
        PING_CHECK {
        }
    }
    protocol TCP
}
`;

const SERVICES = parseServices("http 80/tcp\nhttps 443/tcp\ndomain 53/udp\n");

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "kacfg-"));
  mkdirSync(join(dir, "conf.d"));
  writeFileSync(join(dir, "keepalived.conf"), MAIN);
  writeFileSync(join(dir, "conf.d", "10-web.conf"), WEB);
  writeFileSync(join(dir, "conf.d", "20-dns.conf"), DNS);
  writeFileSync(join(dir, "conf.d", "30-dr.conf"), DR);
  writeFileSync(join(dir, "conf.d", "notes.txt"), "not included\n");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function load(path: string): { engine: EngineControl; manager: HealthManager; log: string[] } {
  const engine = new EngineControl(new Engine({ maxConns: 1024 }));
  const log: string[] = [];
  const manager = new HealthManager(engine.table, { log: (m) => log.push(m) });
  const r = manager.loadFile(path);
  expect(r.error).toBeUndefined();
  return { engine, manager, log };
}

describe("a deployment-style keepalived.conf", () => {
  it("is parsed, with its includes, into the expected table", () => {
    const { engine, log } = load(join(dir, "keepalived.conf"));
    expect(run(["-Sn"], engine, "", { services: SERVICES }).stdout).toBe(
      [
        "-A -t 10.0.0.100:80 -s wrr -p 50 -M 255.255.255.0",
        "-a -t 10.0.0.100:80 -r 192.168.10.1:80 -m -w 3",
        "-a -t 10.0.0.100:80 -r 192.168.10.2:80 -m -w 1",
        "-A -t 10.0.0.101:443 -s sh -b sh-port",
        "-a -t 10.0.0.101:443 -r 192.168.10.5:443 -g -w 2",
        "-a -t 10.0.0.101:443 -r 192.168.10.6:443 -i -w 2 --tun-type ipip",
        "-A -u 10.0.0.100:53 -s rr -o",
        "-a -u 10.0.0.100:53 -r 192.168.10.3:53 -m -w 1 -x 100 -y 50",
        "-a -u 10.0.0.100:53 -r 192.168.10.4:53 -m -w 1",
        "",
      ].join("\n"),
    );
    expect(log).toEqual([
      `health: warning: ${dir}/keepalived.conf:2: global_defs is not supported by lvsd (block ignored)`,
      `health: loaded ${dir}/keepalived.conf: 3 virtual servers, 6 real servers, 6 checks`,
    ]);
  });

  it("lists every file it read, includes in glob order", () => {
    const cfg = parseConfigFile(join(dir, "keepalived.conf"));
    expect(cfg.files).toEqual([
      join(dir, "keepalived.conf"),
      join(dir, "conf.d", "10-web.conf"),
      join(dir, "conf.d", "20-dns.conf"),
      join(dir, "conf.d", "30-dr.conf"),
    ]);
    expect(cfg.virtualServers.map((v) => v.name)).toEqual([
      "TCP 10.0.0.100:80",
      "UDP 10.0.0.100:53",
      "TCP 10.0.0.101:443",
    ]);
  });

  it("resolves defaults and inheritance (virtual server -> real server -> checker)", () => {
    const cfg = parseConfigFile(join(dir, "keepalived.conf"));
    const [web, dns, dr] = cfg.virtualServers;
    const http = web?.realServers[0]?.checkers[0];
    // own values; warmup defaults to delay_loop, which comes from the virtual server
    expect(http?.timing).toEqual({
      delayLoop: 6,
      connectTimeout: 3,
      retry: 3,
      delayBeforeRetry: 2,
      warmup: 6,
      alpha: false,
    });
    expect(http?.where).toEqual({ file: join(dir, "conf.d", "10-web.conf"), line: 12 });
    const tcp = web?.realServers[1]?.checkers[0];
    expect(tcp?.timing).toEqual({
      delayLoop: 6,
      connectTimeout: 3,
      retry: 1,
      delayBeforeRetry: 1,
      warmup: 6,
      alpha: false,
    });
    expect(web?.realServers[1]?.inhibit).toBe(true);
    expect(web?.sorry).toEqual({
      addr: ipToU32("192.168.10.99"),
      port: 80,
      fwd: FwdMethod.MASQ,
      weight: 1,
      inhibit: false,
    });
    const misc = dns?.realServers[1]?.checkers[0];
    expect(misc).toMatchObject({
      type: "MISC_CHECK",
      argv: ["/usr/local/bin/check-dns.sh", "192.168.10.4"],
      timeout: 10, // misc_timeout defaults to delay_loop
      dynamic: true,
      timing: { retry: 0, delayBeforeRetry: 1, delayLoop: 10 },
    });
    const udp = dns?.realServers[0]?.checkers[0];
    expect(udp).toMatchObject({
      type: "UDP_CHECK",
      requireReply: true,
      minReplyLength: 0,
      maxReplyLength: 255,
    });
    if (udp?.type === "UDP_CHECK") expect([...udp.payload]).toEqual([0, 1]);
    const ssl = dr?.realServers[0]?.checkers[0];
    // HTTP_GET/SSL_GET retry after 3 s by default; digests are kept in lower case; keepalived's
    // default delay_loop is 60 s
    expect(ssl).toMatchObject({
      type: "SSL_GET",
      protocol: "1.0",
      timing: { delayLoop: 60, connectTimeout: 5, retry: 1, delayBeforeRetry: 3, warmup: 60 },
      urls: [{ path: "/", digest: "9b3a0c85a887a256d6939da88aabd8cd", status: [[200, 299]] }],
    });
    expect(dr?.realServers.map((r) => r.fwd)).toEqual([FwdMethod.ROUTE, FwdMethod.TUNNEL]);
  });
});

describe("keywords", () => {
  const vs = (body: string, head = "10.0.0.1 80") =>
    parseConfigText(`virtual_server ${head} {\n${body}\n}\n`, "k.conf");

  it("HTTP_GET: status codes, virtualhost inheritance, protocol, connect options", () => {
    const cfg = vs(`
  virtualhost www.example.com
  real_server 192.168.10.1 8080 {
    HTTP_GET {
      connect_ip 192.168.20.1
      connect_port 81
      bindto 192.168.10.253
      bind_port 4000
      http_protocol 1.1
      url { path /a
        status_code 200-299 302 503
      }
      url {
        path /b
        virtualhost b.example.com
      }
    }
  }`);
    const c = cfg.virtualServers[0]?.realServers[0]?.checkers[0];
    expect(c).toMatchObject({
      type: "HTTP_GET",
      protocol: "1.1",
      target: {
        addr: ipToU32("192.168.20.1"),
        port: 81,
        bindto: ipToU32("192.168.10.253"),
        bindPort: 4000,
      },
      urls: [
        {
          path: "/a",
          status: [
            [200, 299],
            [302, 302],
            [503, 503],
          ],
          virtualhost: "www.example.com",
        },
        { path: "/b", status: [[200, 299]], virtualhost: "b.example.com" },
      ],
    });
  });

  it("syn_proxy turns the SYN proxy on (DPVS's keyword); without it the option is off", () => {
    const on = vs("  protocol TCP\n  lb_kind NAT\n  syn_proxy\n  real_server 192.168.10.1 80 {\n  }");
    expect(on.virtualServers[0]!.opts.synProxy).toBe(true);
    const off = vs("  protocol TCP\n  lb_kind NAT");
    expect(off.virtualServers[0]!.opts.synProxy).toBe(false);
    // applied to the table, listed by lvsadm
    const engine = new Engine({ maxConns: 64 });
    const hm = new HealthManager(engine.table);
    hm.apply(on);
    const s = engine.table.list()[0]!;
    expect(run(["-Sn"], new EngineControl(engine), "", { services: parseServices("") }).stdout).toContain(
      "-A -t 10.0.0.1:80 -s wlc --synproxy\n",
    );
    hm.apply(off);
    expect(s.flags).toBe(0);
    hm.stop();
  });

  it("real server level options override the virtual server's; checker level overrides both", () => {
    const cfg = vs(`
  delay_loop 2
  connect_timeout 4
  retry 5
  warmup 0
  alpha
  inhibit_on_failure
  real_server 192.168.10.1 80 {
    delay_loop 1.5
    alpha off
    inhibit_on_failure no
    TCP_CHECK { retry 0 }
    TCP_CHECK { delay_before_retry 0.25 }
  }
  real_server 192.168.10.2 80 {
    TCP_CHECK { }
  }`);
    const [a, b] = cfg.virtualServers[0]?.realServers ?? [];
    expect(a?.inhibit).toBe(false);
    expect(a?.checkers.map((c) => c.timing)).toEqual([
      { delayLoop: 1.5, connectTimeout: 4, retry: 0, delayBeforeRetry: 1, warmup: 0, alpha: false },
      { delayLoop: 1.5, connectTimeout: 4, retry: 5, delayBeforeRetry: 0.25, warmup: 0, alpha: false },
    ]);
    expect(b?.inhibit).toBe(true);
    expect(b?.checkers[0]?.timing).toEqual({
      delayLoop: 2,
      connectTimeout: 4,
      retry: 5,
      delayBeforeRetry: 1,
      warmup: 0,
      alpha: true,
    });
  });

  it("UDP_CHECK hex strings are read as keepalived reads them, X nibbles match anything", () => {
    const cfg = vs(
      `
  protocol UDP
  real_server 192.168.10.1 53 {
    UDP_CHECK {
      payload Ab12f 3 456 546443123
      require_reply 8x 0X
      min_reply_length 2
      max_reply_length 512
    }
  }`,
      "10.0.0.1 53",
    );
    const c = cfg.virtualServers[0]?.realServers[0]?.checkers[0];
    if (c?.type !== "UDP_CHECK") throw new Error("not a UDP_CHECK");
    expect(Buffer.from(c.payload).toString("hex")).toBe("ab120f034506546443120" + "3");
    expect(c.reply && Buffer.from(c.reply.bytes).toString("hex")).toBe("8000");
    expect(c.reply && Buffer.from(c.reply.mask).toString("hex")).toBe("f0f0");
    expect([c.minReplyLength, c.maxReplyLength]).toEqual([2, 512]);
  });

  it("scripts are split into words as keepalived splits them", () => {
    expect(splitCommand(`/bin/sh -c 'echo up >> /tmp/x'`)).toEqual(["/bin/sh", "-c", "echo up >> /tmp/x"]);
    expect(splitCommand(`/usr/bin/notify "a b"  c\\ d`)).toEqual(["/usr/bin/notify", "a b", "c d"]);
    expect(splitCommand("  ")).toEqual([]);
    const cfg = vs(`
  quorum 3
  hysteresis 1
  quorum_up "/usr/local/bin/q.sh up"
  quorum_down '/usr/local/bin/q.sh "down now"'
  omega
  real_server 192.168.10.1 80 {
    notify_up "/bin/sh -c 'echo up >> /tmp/f'"
    notify_down /usr/local/bin/down.sh
  }`);
    const v = cfg.virtualServers[0];
    expect(v).toMatchObject({
      quorum: 3,
      hysteresis: 1,
      omega: true,
      quorumUp: ["/usr/local/bin/q.sh", "up"],
      quorumDown: ["/usr/local/bin/q.sh", "down now"],
    });
    expect(v?.realServers[0]).toMatchObject({
      notifyUp: ["/bin/sh", "-c", "echo up >> /tmp/f"],
      notifyDown: ["/usr/local/bin/down.sh"],
    });
  });

  it("a virtual_server_group makes one service per address, sharing the real servers", () => {
    const cfg = parseConfigText(
      `virtual_server_group web {
  10.0.0.100 80
  10.0.0.110-112 8080
}
virtual_server group web {
  lvs_sched rr
  protocol TCP
  real_server 192.168.10.1 80 { TCP_CHECK { } }
}
`,
      "g.conf",
    );
    const v = cfg.virtualServers[0];
    expect(v?.name).toBe("group web (TCP)");
    expect(
      v?.keys.map(
        (k) => `${k.addr >>> 24}.${(k.addr >>> 16) & 255}.${(k.addr >>> 8) & 255}.${k.addr & 255}:${k.port}`,
      ),
    ).toEqual(["10.0.0.100:80", "10.0.0.110:8080", "10.0.0.111:8080", "10.0.0.112:8080"]);
  });

  it("persistence_timeout without a value is 360 s; a port-0 persistent service is allowed", () => {
    const cfg = vs("persistence_timeout\n", "10.0.0.1");
    expect(cfg.virtualServers[0]?.opts).toMatchObject({ flags: 1, timeout: 360 });
    expect(cfg.virtualServers[0]?.keys[0]?.port).toBe(0);
  });
});

describe("warnings", () => {
  it("name the file and line of unknown and unsupported keywords, and the rest still applies", () => {
    const cfg = parseConfigText(
      `vrrp_script chk { script "/bin/true" }
frobnicate 1
virtual_server 10.0.0.1 80 {
  ha_suspend
  lb_mood wild
  real_server 192.168.10.1 80 {
    weigth 2
    notify_up /bin/up.sh nobody
    BFD_CHECK { }
  }
  real_server 192.168.10.2 80 {
    HTTP_GET {
      url { path /
        regex ok }
      bind_if eth0
      color blue
    }
  }
}
@^main frob2 $X
`,
      "w.conf",
      ".",
      { configId: "lvs1" },
    );
    expect(cfg.warnings).toEqual([
      "w.conf:2: unknown keyword 'frobnicate' (ignored)",
      "w.conf:4: ha_suspend is not supported by lvsd (ignored)",
      "w.conf:5: unknown keyword 'lb_mood' in virtual_server (ignored)",
      "w.conf:3: virtual_server 10.0.0.1 80: no protocol set, defaulting to UDP (as keepalived)",
      "w.conf:7: unknown keyword 'weigth' in real_server (ignored)",
      "w.conf:8: notify_up: running scripts as user 'nobody' is not supported by lvsd (it runs as lvsd's user)",
      "w.conf:9: BFD_CHECK is not supported by lvsd (block ignored): real_server 192.168.10.1:80 is held down, as no check can show it is up",
      "w.conf:14: regex is not supported by lvsd (ignored)",
      "w.conf:15: bind_if is not supported by lvsd (ignored)",
      "w.conf:16: unknown keyword 'color' in HTTP_GET (ignored)",
      "w.conf:20: unknown keyword 'frob2' (ignored)",
    ]);
    expect(cfg.virtualServers[0]?.realServers.map((r) => r.checkers.map((c) => c.type))).toEqual([
      ["UNRUNNABLE"],
      ["HTTP_GET"],
    ]);
  });

  it("an include pattern that matches nothing is a warning", () => {
    const cfg = parseConfigText("include conf.d/*.missing\n", "i.conf", dir);
    expect(cfg.warnings).toEqual(["i.conf:1: include conf.d/*.missing: no file matches (nothing included)"]);
  });

  it("brace patterns include their alternatives in order", () => {
    const cfg = parseConfigText("include conf.d/{30-dr,10-web}.conf\n", "b.conf", dir);
    expect(cfg.virtualServers.map((v) => v.name)).toEqual(["TCP 10.0.0.101:443", "TCP 10.0.0.100:80"]);
  });
});

describe("malformed files: file, line and what was expected", () => {
  const cases: [string, string][] = [
    [
      "virtual_server 10.0.0.1 80 {\n  delay_loop 5\n",
      "e.conf:2: unexpected end of file: expected '}' to close virtual_server (opened at e.conf:1)",
    ],
    ["virtual_server 10.0.0.1 80 {\n}\n}\n", "e.conf:3: unexpected '}': no block is open"],
    ["{\n", "e.conf:1: unexpected '{': a block must follow a keyword"],
    ["virtual_server 10.0.0.1 80\n", "e.conf:1: virtual_server: expected '{' to open its block"],
    [
      "virtual_server 10.0.0.300 80 {\n}\n",
      "e.conf:1: virtual_server: expected an IPv4 address, 'fwmark' or 'group', got '10.0.0.300'",
    ],
    [
      "virtual_server 10.0.0.1 80 90 {\n}\n",
      "e.conf:1: virtual_server: expected an IPv4 address and a port, 'fwmark N' or 'group NAME'",
    ],
    [
      "virtual_server 2001:db8::1 80 {\n}\n",
      "e.conf:1: virtual_server: IPv6 is not supported by lvsd ('2001:db8::1')",
    ],
    [
      "virtual_server group nope {\n}\n",
      "e.conf:1: virtual_server group nope: no virtual_server_group nope is defined before it",
    ],
    [
      "virtual_server 10.0.0.1 99999 {\n}\n",
      "e.conf:1: virtual_server: expected an integer 0..65535, got '99999'",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  delay_loop abc\n}\n",
      "e.conf:2: delay_loop: expected a time in seconds (like 5 or 0.5, above 0), got 'abc'",
    ],
    ["virtual_server 10.0.0.1 80 {\n  delay_loop\n}\n", "e.conf:2: delay_loop: expected a time in seconds"],
    [
      "virtual_server 10.0.0.1 80 {\n  delay_loop 1 2\n}\n",
      "e.conf:2: delay_loop: expected a time in seconds, got 2 values",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  delay_loop 5 {\n  }\n}\n",
      "e.conf:2: delay_loop does not take a block",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  protocol SCTP\n}\n",
      "e.conf:2: protocol SCTP is not supported by lvsd (TCP or UDP)",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  lb_kind FOO\n}\n",
      "e.conf:2: lb_kind: expected NAT, DR or TUN, got 'FOO'",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  lvs_method TUN type gue port 6080\n}\n",
      "e.conf:2: lvs_method TUN type gue port 6080: only ipip tunnels are available (TUN or TUN type ipip)",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  ops\n  protocol TCP\n}\n",
      "e.conf:2: ops: one-packet scheduling is only for UDP virtual servers",
    ],
    [
      "virtual_server 10.0.0.1 53 {\n  syn_proxy\n  protocol UDP\n}\n",
      "e.conf:2: syn_proxy: the SYN proxy is only for TCP virtual servers",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  syn_proxy\n  protocol TCP\n  lb_kind DR\n  real_server 10.0.1.1 80 {\n  }\n}\n",
      "e.conf:2: syn_proxy: real server 10.0.1.1:80 is not NAT (lb_kind NAT): the director must see the real servers' replies",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  sh-port\n}\n",
      "e.conf:1: incompatible scheduler flag `sh-port' for scheduler wlc",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  persistence_engine sip\n}\n",
      "e.conf:2: persistence_engine: persistence engines are not supported by lvsd",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  persistence_timeout 0\n}\n",
      "e.conf:2: persistence_timeout: expected an integer 1..2678400, got '0'",
    ],
    [
      "virtual_server 10.0.0.1 {\n}\n",
      "e.conf:1: virtual_server: a service without a port (port 0) must be persistent (persistence_timeout)",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  TCP_CHECK {\n  }\n}\n",
      "e.conf:2: TCP_CHECK belongs in a real_server block",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  real_server 192.168.10.1 80 {\n    uthreshold 5\n    lthreshold 10\n  }\n}\n",
      "e.conf:2: real_server: lthreshold 10 is above uthreshold 5",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  real_server 192.168.10.1 {\n  }\n  real_server 192.168.10.1 80 {\n  }\n  protocol TCP\n}\n",
      "e.conf:4: real_server 192.168.10.1:80 is given twice in virtual_server TCP 10.0.0.1:80 (first at line 2)",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  real_server 192.168.10.1 80 {\n    HTTP_GET {\n    }\n  }\n}\n",
      "e.conf:3: HTTP_GET: expected at least one url { path ... } block",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  real_server 192.168.10.1 80 {\n    HTTP_GET {\n      url {\n        digest 00\n      }\n    }\n  }\n}\n",
      "e.conf:5: digest: expected an MD5 digest (32 hex digits), got '00'",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  real_server 192.168.10.1 80 {\n    HTTP_GET {\n      url {\n        status_code 200-99\n      }\n    }\n  }\n}\n",
      "e.conf:5: status_code: expected a status code 100..599 or a range like 200-299, got '200-99'",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  real_server 192.168.10.1 80 {\n    HTTP_GET {\n      url {\n      }\n    }\n  }\n}\n",
      "e.conf:4: url: expected a path (like path /health) in the block",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  real_server 192.168.10.1 80 {\n    MISC_CHECK {\n    }\n  }\n}\n",
      "e.conf:3: MISC_CHECK: expected misc_path with the script to run",
    ],
    [
      'virtual_server 10.0.0.1 80 {\n  real_server 192.168.10.1 80 {\n    MISC_CHECK {\n      misc_path "/bin/true\n    }\n  }\n}\n',
      'e.conf:4: unterminated quoted string (missing ")',
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  real_server 192.168.10.1 80 {\n    TCP_CHECK\n  }\n}\n",
      "e.conf:3: TCP_CHECK: expected '{' to open its block",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  real_server 192.168.10.1 80 {\n    UDP_CHECK {\n      payload 0g\n    }\n  }\n}\n",
      "e.conf:4: payload: expected hex digits, got '0g'",
    ],
    [
      "virtual_server 10.0.0.1 80 {\n  real_server 192.168.10.1 80 {\n    inhibit_on_failure maybe\n  }\n}\n",
      "e.conf:3: inhibit_on_failure: expected on|off|true|false|yes|no, got 'maybe'",
    ],
    ["include\n", "e.conf:1: include: expected a file name or pattern"],
  ];
  it.each(cases)("%j", (text, message) => {
    let caught: unknown;
    try {
      parseConfigText(text, "e.conf", dir);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toBe(message);
  });

  it("an include loop and an unreadable main file", () => {
    const a = join(dir, "loop-a.conf");
    const b = join(dir, "loop-b.conf");
    writeFileSync(a, "include loop-b.conf\n");
    writeFileSync(b, "# b\ninclude loop-a.conf\n");
    expect(() => parseConfigFile(a)).toThrow(`${b}:2: include loop: ${a} -> ${b} -> ${a}`);
    expect(() => parseConfigFile(join(dir, "absent.conf"))).toThrow(
      `${join(dir, "absent.conf")}: cannot read the configuration: no such file`,
    );
  });
});
