/**
 * SMTP_CHECK, DNS_CHECK and FILE_CHECK against real local servers and files: a tiny SMTP server
 * (node:net) and DNS responder (node:dgram) on 127.0.0.1, ephemeral ports, all closed at the end.
 */

import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfigText } from "../../../src/control/config/parser.js";
import type { CheckerConfig } from "../../../src/control/config/types.js";
import { dnsQuery, probeDns } from "../../../src/control/health/dns.js";
import { fileNumber, probeFile } from "../../../src/control/health/file.js";
import { probeSmtp, smtpStatus } from "../../../src/control/health/smtp.js";

const never = new AbortController().signal;

/** The checkers of one real server at 127.0.0.1:PORT. */
function checker<T extends CheckerConfig["type"]>(
  port: number,
  block: string,
): Extract<CheckerConfig, { type: T }> {
  const cfg = parseConfigText(
    `virtual_server 10.0.0.1 80 {\n  protocol TCP\n  connect_timeout 1\n  real_server 127.0.0.1 ${port} {\n${block}\n  }\n}\n`,
    "h.conf",
  );
  return cfg.virtualServers[0]?.realServers[0]?.checkers[0] as Extract<CheckerConfig, { type: T }>;
}

describe("SMTP_CHECK", () => {
  let server: Server;
  let port: number;
  const sockets = new Set<Socket>();
  /** What the server says to the next connection: greeting and HELO reply (null: say nothing). */
  let script: { greeting: string | null; helo: string } = { greeting: "220 mx ESMTP", helo: "250 hello" };
  const seen: string[] = [];
  beforeAll(async () => {
    server = createServer((s) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      const my = script;
      if (my.greeting !== null) s.write(`${my.greeting}\r\n`);
      let buf = "";
      s.on("data", (d) => {
        buf += d.toString();
        let nl = buf.indexOf("\n");
        while (nl >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, "");
          buf = buf.slice(nl + 1);
          seen.push(line);
          if (line.startsWith("HELO ")) s.write(`${my.helo}\r\n`);
          else if (line === "QUIT") s.end("221 bye\r\n");
          nl = buf.indexOf("\n");
        }
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as { port: number }).port;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });

  it("reads the greeting, sends HELO helo_name, wants 250, then QUIT", async () => {
    seen.length = 0;
    script = { greeting: "220 mx ESMTP", helo: "250 hello" };
    const c = checker<"SMTP_CHECK">(port, "    SMTP_CHECK {\n      helo_name lvs.example\n    }");
    expect(c.target.port).toBe(port); // default: the real server's port
    const r = await probeSmtp(c, never);
    expect(r).toEqual({ ok: true, reason: `SMTP_CHECK 127.0.0.1:${port} greeting 220, HELO 250` });
    expect(seen).toEqual(["HELO lvs.example", "QUIT"]);
  });
  it("the default HELO name is keepalived's", async () => {
    seen.length = 0;
    const r = await probeSmtp(checker<"SMTP_CHECK">(port, "    SMTP_CHECK {\n    }"), never);
    expect(r.ok).toBe(true);
    expect(seen[0]).toBe("HELO smtpchecker.keepalived.org");
  });
  it("fails on a bad greeting, a refused HELO, a silent server", async () => {
    const c = checker<"SMTP_CHECK">(port, "    SMTP_CHECK {\n    }");
    script = { greeting: "554 go away", helo: "250 hello" };
    expect((await probeSmtp(c, never)).reason).toBe(
      `SMTP_CHECK 127.0.0.1:${port} bad greeting: '554 go away'`,
    );
    script = { greeting: "220-multi line", helo: "250 hello" };
    expect((await probeSmtp(c, never)).ok).toBe(false);
    script = { greeting: "220 mx", helo: "501 no" };
    expect((await probeSmtp(c, never)).reason).toBe(`SMTP_CHECK 127.0.0.1:${port} bad HELO reply: '501 no'`);
    script = { greeting: null, helo: "250 hello" };
    expect((await probeSmtp(c, never)).reason).toBe(`SMTP_CHECK 127.0.0.1:${port} no reply within 1s`);
  });
  it("status lines as keepalived reads them", () => {
    expect([smtpStatus("220 x"), smtpStatus("220"), smtpStatus("220-x"), smtpStatus("22 x")]).toEqual([
      220, 220, -1, -1,
    ]);
  });
});

describe("DNS_CHECK", () => {
  let server: UdpSocket;
  let port: number;
  /** The RCODE to answer with (null: no answer); each query seen. */
  let rcode: number | null = 0;
  const queries: Buffer[] = [];
  beforeAll(async () => {
    server = createSocket("udp4");
    server.on("message", (msg, from) => {
      queries.push(msg);
      if (rcode === null) return;
      const reply = Buffer.from(msg);
      reply.writeUInt16BE(0x8180 | rcode, 2); // QR, RD, RA, rcode
      // a stray reply with another id first: it must be ignored
      const stray = Buffer.from(reply);
      stray.writeUInt16BE((msg.readUInt16BE(0) + 1) & 0xffff, 0);
      stray.writeUInt16BE(0x8180, 2);
      server.send(rcode === 0 ? reply : stray, from.port, from.address, () => {
        if (rcode !== 0) server.send(reply, from.port, from.address);
      });
    });
    await new Promise<void>((r) => server.bind(0, "127.0.0.1", r));
    port = server.address().port;
  });
  afterAll(() => new Promise<void>((r) => server.close(r)));

  it("asks for type SOA of the root by default and wants rcode 0", async () => {
    queries.length = 0;
    rcode = 0;
    const c = checker<"DNS_CHECK">(port, "    DNS_CHECK {\n    }");
    expect([c.qtype, c.name, c.timing.retry, c.timing.delayBeforeRetry]).toEqual([6, "", 3, 60]);
    const r = await probeDns(c, never);
    expect(r.ok).toBe(true);
    const q = queries[0] as Buffer;
    // header: RD, one question; QNAME root (0), QTYPE 6, QCLASS 1
    expect([q.readUInt16BE(2), q.readUInt16BE(4), q.subarray(12).toString("hex")]).toEqual([
      0x0100,
      1,
      "0000060001",
    ]);
  });
  it("type and name go into the question", async () => {
    queries.length = 0;
    const c = checker<"DNS_CHECK">(port, "    DNS_CHECK {\n      type A\n      name www.example.com\n    }");
    expect((await probeDns(c, never)).ok).toBe(true);
    expect((queries[0] as Buffer).subarray(12)).toEqual(dnsQuery(0, "www.example.com", 1).subarray(12));
    expect((queries[0] as Buffer).subarray(12).toString("latin1")).toContain("\x03www\x07example\x03com\x00");
  });
  it("an error rcode fails (a reply with another id is ignored); silence fails", async () => {
    const c = checker<"DNS_CHECK">(port, "    DNS_CHECK {\n    }");
    rcode = 2;
    expect((await probeDns(c, never)).reason).toBe(`DNS_CHECK 127.0.0.1:${port} rcode 2`);
    rcode = null;
    expect((await probeDns(c, never)).reason).toBe(`DNS_CHECK 127.0.0.1:${port} no reply within 1s`);
  });
});

describe("FILE_CHECK", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "filecheck-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const fc = (tf: string, block = "      track_file f\n") =>
    parseConfigText(
      `${tf}\nvirtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.1.1 80 {\n    weight 10\n    FILE_CHECK {\n${block}    }\n  }\n}\n`,
      "f.conf",
    ).virtualServers[0]?.realServers[0]?.checkers[0] as Extract<CheckerConfig, { type: "FILE_CHECK" }>;

  it("weight 0: down while the file holds a non-zero number (reverse: while it holds 0); missing is 0", async () => {
    const path = join(dir, "a");
    const c = fc(`track_file f {\n  file ${path}\n  weight 0\n}`);
    expect((await probeFile(c, never)).ok).toBe(true); // missing
    writeFileSync(path, "1\n");
    expect((await probeFile(c, never)).ok).toBe(false);
    writeFileSync(path, "0x0");
    expect((await probeFile(c, never)).ok).toBe(true);
    const rev = fc(`track_file f {\n  file ${path}\n  weight 0 reverse\n}`);
    expect((await probeFile(rev, never)).ok).toBe(false);
  });
  it("weight W: up, with the real server's weight moved by number * W (the FILE_CHECK's weight wins)", async () => {
    const path = join(dir, "b");
    writeFileSync(path, "3");
    const c = fc(`track_file f {\n  file ${path}\n  weight 2\n}`);
    expect(await probeFile(c, never)).toMatchObject({ ok: true, weight: 16 });
    const own = fc(`track_file f {\n  file ${path}\n  weight 2\n}`, "      track_file f\n      weight -5\n");
    expect(await probeFile(own, never)).toMatchObject({ ok: true, weight: 0 });
  });
  it("init_file writes the value when the file is missing", async () => {
    const path = join(dir, "c");
    const c = fc(`track_file f {\n  file ${path}\n  weight 0\n  init_file 7\n}`);
    expect((await probeFile(c, never)).ok).toBe(false);
    expect(readFileSync(path, "utf8")).toBe("7\n");
  });
  it("FILE_CHECK without a usable track_file holds the server down", () => {
    const c = parseConfigText(
      "virtual_server 10.0.0.1 80 {\n  protocol TCP\n  real_server 10.0.1.1 80 {\n    FILE_CHECK {\n      track_file nope\n    }\n  }\n}\n",
      "n.conf",
    );
    expect(c.virtualServers[0]?.realServers[0]?.checkers.map((x) => x.type)).toEqual(["UNRUNNABLE"]);
    expect(c.warnings).toEqual([
      "n.conf:5: FILE_CHECK: track_file nope not found (ignored)",
      "n.conf:4: FILE_CHECK has no usable track_file: real_server 10.0.1.1:80 is held down, as no check can show it is up",
    ]);
  });
  it("numbers as strtol(…, 0) reads them", () => {
    expect([
      fileNumber("12\n"),
      fileNumber("0x10"),
      fileNumber("010"),
      fileNumber("-3"),
      fileNumber("x"),
      fileNumber(""),
    ]).toEqual([12, 16, 8, -3, 0, 0]);
    expect(fileNumber("99999999999")).toBeUndefined();
  });
});
