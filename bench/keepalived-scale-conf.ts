/**
 * A big keepalived.conf like the one of issue 11 ("Scale": 5.4 MB, 25,612 virtual servers):
 * every virtual server is a TCP service with two real servers and one check each, three in four
 * a TCP_CHECK and one in four an HTTP_GET with a url (so 2 x 25,612 = 51,224 checkers, the
 * issue's "51k check transitions" when they all fail). Written the way such files usually are
 * (generated, one keyword a line, tab indentation, one real server in three of weight 2), 5.6 MB with the defaults.
 *
 * `node dist/bench/keepalived-scale-conf.js OUT [--services N] [--real-base A.B.C.D]
 * [--real-port P] [--delay-loop S]` writes the file; bench/keepalived-scale.bench.ts and
 * test/control/health/scale.test.ts call `scaleConf` directly.
 *
 * Virtual servers are 10.0.0.0/8 addresses (10.0.0.1, 10.0.0.2, ...) on port 80; real servers
 * are `realBase` + 2i and + 2i + 1 by default; with `realPort` given and the same `realBase` for
 * every real server (`sameRealAddr`), real servers differ by port instead, so a test can point
 * thousands of checkers at 127.0.0.1 ports.
 */

import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { ipToU32, u32ToIp } from "../src/lib/addr.js";

export interface ScaleConfOptions {
  /** Virtual servers (default 25,612, the issue's). */
  services?: number;
  /** Real servers per virtual server (default 2). */
  realServers?: number;
  /** One in `httpEvery` real servers has an HTTP_GET instead of a TCP_CHECK (default 4; 0: none). */
  httpEvery?: number;
  /** First real server address (default 192.168.0.1). */
  realBase?: string;
  /** Every real server on `realBase`, told apart by port from `realPort` up (for 127.0.0.1). */
  sameRealAddr?: boolean;
  /** Real server port (default 80); with sameRealAddr the first of consecutive ports. */
  realPort?: number;
  /** The same real servers (address, port) in every virtual server instead of the ones above. */
  realServersAt?: readonly (readonly [string, number])[];
  /** Checkers' delay_loop, seconds (default 6). */
  delayLoop?: number;
  /** Checkers' connect_timeout, seconds, as a line of each virtual server (default: none, 5 s). */
  connectTimeout?: number;
  /** Virtual servers' lb_kind (default NAT). */
  lbKind?: "NAT" | "DR" | "TUN";
  /** Extra lines in each virtual server (e.g. "warmup 0"). */
  extra?: string[];
}

/** The configuration text. */
export function scaleConf(o: ScaleConfOptions = {}): string {
  const services = o.services ?? 25_612;
  const perVs = o.realServers ?? 2;
  const httpEvery = o.httpEvery ?? 4;
  const realBase = ipToU32(o.realBase ?? "192.168.0.1");
  const realPort = o.realPort ?? 80;
  const delayLoop = o.delayLoop ?? 6;
  const vipBase = ipToU32("10.0.0.1");
  const parts: string[] = [
    `! ${services} virtual servers x ${perVs} real servers (bench/keepalived-scale-conf.ts)\n`,
    "global_defs {\n    router_id LVS_SCALE\n}\n\n",
  ];
  let n = 0;
  for (let i = 0; i < services; i++) {
    const vip = u32ToIp((vipBase + i) >>> 0);
    let s = `virtual_server ${vip} 80 {\n\tdelay_loop ${delayLoop}\n\tlb_algo wrr\n\tlb_kind ${o.lbKind ?? "NAT"}\n\tprotocol TCP\n`;
    if (o.connectTimeout !== undefined) s += `\tconnect_timeout ${o.connectTimeout}\n`;
    for (const line of o.extra ?? []) s += `\t${line}\n`;
    const count = o.realServersAt?.length ?? perVs;
    for (let r = 0; r < count; r++, n++) {
      const at = o.realServersAt?.[r];
      const addr = at ? at[0] : u32ToIp(o.sameRealAddr ? realBase : (realBase + n) >>> 0);
      const port = at ? at[1] : o.sameRealAddr ? realPort + n : realPort;
      s += `\treal_server ${addr} ${port} {\n`;
      if (n % 3 === 2) s += "\t\tweight 2\n";
      if (httpEvery > 0 && n % httpEvery === httpEvery - 1) {
        s += "\t\tHTTP_GET {\n\t\t\turl {\n\t\t\t\tpath /health\n\t\t\t}\n\t\t}\n";
      } else {
        s += "\t\tTCP_CHECK {\n\t\t}\n";
      }
      s += "\t}\n";
    }
    s += "}\n";
    parts.push(s);
  }
  return parts.join("");
}

function main(argv: string[]): void {
  const out = argv[0];
  if (!out || out.startsWith("-")) {
    process.stderr.write(
      "usage: keepalived-scale-conf OUT [--services N] [--real-base ADDR] [--real-port P] [--same-real-addr] [--delay-loop S]\n",
    );
    process.exit(2);
  }
  const o: ScaleConfOptions = {};
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--same-real-addr") {
      o.sameRealAddr = true;
      continue;
    }
    const v = argv[++i] ?? "";
    if (a === "--services") o.services = Number(v);
    else if (a === "--real-base") o.realBase = v;
    else if (a === "--real-port") o.realPort = Number(v);
    else if (a === "--delay-loop") o.delayLoop = Number(v);
    else throw new Error(`unknown option ${a}`);
  }
  const text = scaleConf(o);
  writeFileSync(out, text);
  process.stdout.write(`${out}: ${text.length} bytes\n`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) main(process.argv.slice(2));
