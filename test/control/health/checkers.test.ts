/**
 * Every checker against real servers in network namespaces: a prober namespace (where lvsd
 * would run) and a server namespace with an HTTP/HTTPS server answering 200, 503, slowly or by
 * Host, a UDP echo, closed ports, and a second address whose ICMP echo requests an nftables rule
 * drops. The probes run from the prober namespace through the built dist/ (fixtures/probe.mjs),
 * exactly as lvsd runs them. Needs root; skipped with a message otherwise. The namespaces (and
 * so their devices) are removed in afterAll, also when a test fails.
 */

import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { canUseNetns, ip, sh, Topology, waitFor } from "../../../src/tools/lab/netns.js";
import { need, skipWithout } from "../../support/tools.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..", "..", "..");
const BUILT = existsSync(join(ROOT, "dist", "src", "control", "health", "index.js"));
const ok = canUseNetns() && BUILT;
if (!ok) {
  console.warn(
    "skipping health-checker namespace tests: needs root, the ip tool and the build (npm run build)",
  );
}

const BODY = "lvs-ts health check body\n";
const BODY_MD5 = createHash("md5").update(BODY).digest("hex");

interface Result {
  ok: boolean;
  reason: string;
  weight?: number;
  ms: number;
}

describe.skipIf(!ok)("checkers against real servers in namespaces", () => {
  const topo = new Topology(`hc${process.pid % 100000}`);

  beforeAll(async () => {
    const p = topo.addNs("p");
    const s = topo.addNs("s");
    ip("link", "add", topo.dev("pa"), "netns", p, "type", "veth", "peer", "name", topo.dev("sa"), "netns", s);
    ip("-n", p, "addr", "add", "10.9.0.1/24", "dev", topo.dev("pa"));
    ip("-n", s, "addr", "add", "10.9.0.2/24", "dev", topo.dev("sa"));
    ip("-n", s, "addr", "add", "10.9.0.3/24", "dev", topo.dev("sa"));
    ip("-n", p, "link", "set", topo.dev("pa"), "up");
    ip("-n", s, "link", "set", topo.dev("sa"), "up");
    // 10.9.0.3 drops ICMP echo requests (the "host that drops ICMP")
    const nft = (...a: string[]) => {
      if (need("nft") !== "") return; // then PING_CHECK skips, naming nft's package
      const r = topo.exec("s", "nft", a);
      if (r.code !== 0) throw new Error(`nft ${a.join(" ")}: ${r.stderr}`);
    };
    nft("add", "table", "inet", "hc");
    nft("add", "chain", "inet", "hc", "in", "{ type filter hook input priority 0; }");
    nft("add", "rule", "inet", "hc", "in", "ip", "daddr", "10.9.0.3", "icmp", "type", "echo-request", "drop");
    topo.spawn("s", process.execPath, [
      join(HERE, "fixtures", "server.mjs"),
      "--name",
      "s",
      "--http",
      "8080",
      "--https",
      "8443",
      "--udp",
      "5353",
    ]);
    await waitFor(
      "the test server",
      () => topo.exec("s", "ss", ["-ltn", "sport = :8443"]).stdout.split("\n").length >= 3,
      10_000,
    );
  }, 30_000);
  afterAll(() => topo.destroy());

  /** Probe each case's checker once, all in parallel, from the prober namespace. */
  function probeAll(cases: { rs: string; checker: string }[]): Result[] {
    const conf = cases
      .map(
        (c, i) =>
          `virtual_server 10.200.0.${i + 1} 80 {\n  protocol TCP\n  connect_timeout 1\n  real_server ${c.rs} {\n${c.checker}\n  }\n}\n`,
      )
      .join("");
    const r = sh(
      "ip",
      ["netns", "exec", topo.ns("p"), process.execPath, join(HERE, "fixtures", "probe.mjs")],
      conf,
      30_000,
    );
    if (r.code !== 0) throw new Error(`probe.mjs: ${r.stderr}`);
    return JSON.parse(r.stdout) as Result[];
  }

  it("TCP_CHECK: connects, is refused by a closed port, times out on a silent address; bindto and connect_ip", () => {
    const r = probeAll([
      { rs: "10.9.0.2 8080", checker: "TCP_CHECK { }" },
      { rs: "10.9.0.2 8081", checker: "TCP_CHECK { }" },
      { rs: "10.9.0.9 80", checker: "TCP_CHECK { }" },
      { rs: "10.9.0.2 8080", checker: "TCP_CHECK { bindto 10.9.0.1 }" },
      { rs: "10.9.0.2 8080", checker: "TCP_CHECK { bindto 10.9.0.77 }" },
      { rs: "10.9.0.50 80", checker: "TCP_CHECK {\n connect_ip 10.9.0.2\n connect_port 8080\n }" },
    ]);
    expect(r.map((x) => [x.ok, x.reason])).toEqual([
      [true, "TCP_CHECK 10.9.0.2:8080 connected"],
      [false, "TCP_CHECK 10.9.0.2:8081 connection refused"],
      [false, "TCP_CHECK 10.9.0.9:80 timeout after 1s"],
      [true, "TCP_CHECK 10.9.0.2:8080 connected"],
      [false, "TCP_CHECK 10.9.0.2:8080 source address not available (bindto)"],
      [true, "TCP_CHECK 10.9.0.2:8080 connected"],
    ]);
    expect(r[2]?.ms).toBeGreaterThanOrEqual(990);
    expect(r[2]?.ms).toBeLessThan(1500);
  });

  it("HTTP_GET: status codes and ranges, slow answers, digests, virtualhost, HTTP/1.0 and 1.1", () => {
    const get = (path: string, extra = "") => `HTTP_GET {\n url {\n path ${path}\n ${extra}\n }\n }`;
    const r = probeAll([
      { rs: "10.9.0.2 8080", checker: get("/ok") },
      { rs: "10.9.0.2 8080", checker: get("/status/503") },
      { rs: "10.9.0.2 8080", checker: get("/status/503", "status_code 200-299 503") },
      { rs: "10.9.0.2 8080", checker: get("/status/302", "status_code 200") },
      { rs: "10.9.0.2 8080", checker: get("/slow/3000") },
      { rs: "10.9.0.2 8080", checker: get("/slow/100") },
      { rs: "10.9.0.2 8080", checker: get("/body", `digest ${BODY_MD5}`) },
      { rs: "10.9.0.2 8080", checker: get("/body", "digest 00000000000000000000000000000000") },
      { rs: "10.9.0.2 8080", checker: get("/vhost", "virtualhost good.example") },
      { rs: "10.9.0.2 8080", checker: get("/vhost") },
      {
        rs: "10.9.0.2 8080",
        checker: `HTTP_GET {\n http_protocol 1.1\n url {\n path /chunked\n digest ${BODY_MD5}\n }\n }`,
      },
      {
        rs: "10.9.0.2 8080",
        checker: `HTTP_GET {\n http_protocol 1.0C\n url {\n path /chunked\n digest ${BODY_MD5}\n }\n }`,
      },
      { rs: "10.9.0.2 8081", checker: get("/ok") },
      {
        rs: "10.9.0.2 8080",
        checker: `HTTP_GET {\n url {\n path /ok\n }\n url {\n path /status/500\n }\n }`,
      },
      { rs: "10.9.0.2 8443", checker: `SSL_GET {\n url {\n path /body\n digest ${BODY_MD5}\n }\n }` },
    ]);
    expect(r.map((x) => [x.ok, x.reason])).toEqual([
      [true, "HTTP_GET 10.9.0.2:8080/ok status 200"],
      [false, "HTTP_GET 10.9.0.2:8080/status/503 status 503, want 200-299"],
      [true, "HTTP_GET 10.9.0.2:8080/status/503 status 503"],
      [false, "HTTP_GET 10.9.0.2:8080/status/302 status 302, want 200"],
      [false, "HTTP_GET 10.9.0.2:8080/slow/3000 timeout after 1s"],
      [true, "HTTP_GET 10.9.0.2:8080/slow/100 status 200"],
      [true, "HTTP_GET 10.9.0.2:8080/body status 200, digest ok"],
      [false, `HTTP_GET 10.9.0.2:8080/body digest ${BODY_MD5}, want 00000000000000000000000000000000`],
      [true, "HTTP_GET 10.9.0.2:8080/vhost status 200"],
      [false, "HTTP_GET 10.9.0.2:8080/vhost status 404, want 200-299"],
      [true, "HTTP_GET 10.9.0.2:8080/chunked status 200, digest ok"],
      [true, "HTTP_GET 10.9.0.2:8080/chunked status 200, digest ok"],
      [false, "HTTP_GET 10.9.0.2:8081/ok connection refused"],
      [false, "HTTP_GET 10.9.0.2:8080/status/500 status 500, want 200-299"],
      [true, "SSL_GET 10.9.0.2:8443/body status 200, digest ok"],
    ]);
  });

  it("UDP_CHECK: echo with and without a required reply, pattern match, closed port", () => {
    const udp = (body: string) => `UDP_CHECK {\n${body}\n}`;
    const r = probeAll([
      { rs: "10.9.0.2 5353", checker: udp("payload 68 69\nrequire_reply") },
      { rs: "10.9.0.2 5353", checker: udp("payload 68 69\nrequire_reply 6563686f3a 6869") },
      { rs: "10.9.0.2 5353", checker: udp("payload 68 69\nrequire_reply 6563686f3a xx 00") },
      { rs: "10.9.0.2 5353", checker: udp("payload 68 69\nrequire_reply\nmax_reply_length 4") },
      { rs: "10.9.0.2 5354", checker: udp("payload 68 69") },
      { rs: "10.9.0.2 5354", checker: udp("require_reply") },
      { rs: "10.9.0.2 5353", checker: udp("payload 68 69") },
    ]);
    expect(r.map((x) => [x.ok, x.reason])).toEqual([
      [true, "UDP_CHECK 10.9.0.2:5353 reply (7 bytes)"],
      [true, "UDP_CHECK 10.9.0.2:5353 reply (7 bytes)"],
      [false, "UDP_CHECK 10.9.0.2:5353 reply differs from require_reply at byte 6"],
      [false, "UDP_CHECK 10.9.0.2:5353 reply of 7 bytes, want 0..4"],
      [false, "UDP_CHECK 10.9.0.2:5354 port unreachable"],
      [false, "UDP_CHECK 10.9.0.2:5354 port unreachable"],
      [true, "UDP_CHECK 10.9.0.2:5353 reply (7 bytes)"],
    ]);
  });

  it("PING_CHECK: a host that answers, and one that drops ICMP echo", (ctx) => {
    skipWithout(ctx, "ping", "nft");
    const r = probeAll([
      { rs: "10.9.0.2 80", checker: "PING_CHECK { }" },
      { rs: "10.9.0.3 80", checker: "PING_CHECK { }" },
      { rs: "10.9.0.2 80", checker: "PING_CHECK { bindto 10.9.0.1 }" },
    ]);
    expect(r.map((x) => [x.ok, x.reason])).toEqual([
      [true, "PING_CHECK 10.9.0.2 echo reply"],
      [false, "PING_CHECK 10.9.0.3 no echo reply within 1s"],
      [true, "PING_CHECK 10.9.0.2 echo reply"],
    ]);
  });

  it("MISC_CHECK: exit codes, misc_dynamic weights, misc_timeout, a missing script", (ctx) => {
    skipWithout(ctx, "curl"); // the last script
    const misc = (cmd: string, extra = "") => `MISC_CHECK {\n misc_path "${cmd}"\n ${extra}\n }`;
    const r = probeAll([
      { rs: "10.9.0.2 80", checker: misc("/bin/sh -c 'exit 0'") },
      { rs: "10.9.0.2 80", checker: misc("/bin/sh -c 'exit 1'") },
      { rs: "10.9.0.2 80", checker: misc("/bin/sh -c 'exit 7'") },
      { rs: "10.9.0.2 80", checker: misc("/bin/sh -c 'exit 7'", "misc_dynamic") },
      { rs: "10.9.0.2 80", checker: misc("/bin/sh -c 'exit 1'", "misc_dynamic") },
      { rs: "10.9.0.2 80", checker: misc("/bin/sh -c 'exit 255'", "misc_dynamic") },
      { rs: "10.9.0.2 80", checker: misc("/bin/sleep 5", "misc_timeout 0.5") },
      { rs: "10.9.0.2 80", checker: misc("/nonexistent/check") },
      // the script sees the namespace lvsd runs in
      { rs: "10.9.0.2 80", checker: misc("/bin/sh -c 'curl -sf http://10.9.0.2:8080/ok >/dev/null'") },
    ]);
    expect(r.map((x) => [x.ok, x.reason, x.weight])).toEqual([
      [true, "MISC_CHECK /bin/sh -c exit 0 exit 0", undefined],
      [false, "MISC_CHECK /bin/sh -c exit 1 exit 1", undefined],
      [false, "MISC_CHECK /bin/sh -c exit 7 exit 7", undefined],
      [true, "MISC_CHECK /bin/sh -c exit 7 exit 7 (weight 5)", 5],
      [false, "MISC_CHECK /bin/sh -c exit 1 exit 1", undefined],
      [true, "MISC_CHECK /bin/sh -c exit 255 exit 255 (weight 253)", 253],
      [false, "MISC_CHECK /bin/sleep 5 timed out after 0.5s", undefined],
      [false, "MISC_CHECK /nonexistent/check cannot run: no such file", undefined],
      [true, "MISC_CHECK /bin/sh -c curl -sf http://10.9.0.2:8080/ok >/dev/null exit 0", undefined],
    ]);
    expect(r[6]?.ms).toBeLessThan(1500);
  });
});
