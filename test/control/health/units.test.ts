/**
 * The pure parts of the checkers and of the configuration reader: the HTTP request, chunked
 * decoding (round trip and random bytes), UDP reply patterns, ages in listings, and the
 * configuration reader on random input (only ConfigError, never anything else).
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../../src/control/config/parser.js";
import { ConfigError, type HttpCheckConfig } from "../../../src/control/config/types.js";
import { buildRequest, decodeChunked, statusText } from "../../../src/control/health/http.js";
import { pingArgs } from "../../../src/control/health/ping.js";
import { age } from "../../../src/control/health/status.js";
import { replyMismatch } from "../../../src/control/health/udp.js";
import { ipToU32 } from "../../../src/lib/addr.js";

const timing = { delayLoop: 1, connectTimeout: 2.5, retry: 1, delayBeforeRetry: 1, warmup: 0, alpha: false };

function http(over: Partial<HttpCheckConfig> = {}): HttpCheckConfig {
  return {
    type: "HTTP_GET",
    where: { file: "t", line: 1 },
    timing,
    target: { addr: ipToU32("192.168.10.1"), port: 80 },
    urls: [{ path: "/health", status: [[200, 299]] }],
    protocol: "1.0",
    ...over,
  };
}

describe("HTTP_GET request", () => {
  it("is HTTP/1.0 with Host by default; 1.0C and 1.1 add Connection: close", () => {
    const c = http();
    const url = c.urls[0] ?? { path: "/", status: [] };
    expect(buildRequest(c, url)).toBe(
      "GET /health HTTP/1.0\r\nUser-Agent: lvsd-health (lvs-ts)\r\nHost: 192.168.10.1\r\n\r\n",
    );
    expect(buildRequest(http({ protocol: "1.0C" }), url)).toBe(
      "GET /health HTTP/1.0\r\nUser-Agent: lvsd-health (lvs-ts)\r\nHost: 192.168.10.1\r\nConnection: close\r\n\r\n",
    );
    const c11 = http({ protocol: "1.1", target: { addr: ipToU32("192.168.10.1"), port: 8080 } });
    expect(buildRequest(c11, { ...url, virtualhost: "www.example.com" })).toBe(
      "GET /health HTTP/1.1\r\nUser-Agent: lvsd-health (lvs-ts)\r\nHost: www.example.com\r\nConnection: close\r\n\r\n",
    );
    expect(buildRequest(c11, url)).toContain("\r\nHost: 192.168.10.1:8080\r\n");
    const ssl = http({ type: "SSL_GET", target: { addr: ipToU32("192.168.10.1"), port: 443 } });
    expect(buildRequest(ssl, url)).toContain("\r\nHost: 192.168.10.1\r\n");
  });

  it("status lists print as written", () => {
    expect(
      statusText([
        [200, 299],
        [302, 302],
      ]),
    ).toBe("200-299,302");
  });
});

describe("chunked bodies", () => {
  const encode = (parts: Uint8Array[]): Buffer =>
    Buffer.concat([
      ...parts.flatMap((p) => [
        Buffer.from(`${p.length.toString(16)}\r\n`),
        Buffer.from(p),
        Buffer.from("\r\n"),
      ]),
      Buffer.from("0\r\n\r\n"),
    ]);

  it("decodes complete, incomplete and malformed input", () => {
    expect(decodeChunked(Buffer.from("5\r\nhello\r\n6;x=y\r\n world\r\n0\r\n\r\n"))).toEqual({
      body: Buffer.from("hello world"),
      complete: true,
    });
    expect(decodeChunked(Buffer.from("5\r\nhel"))).toEqual({ body: Buffer.alloc(0), complete: false });
    expect(decodeChunked(Buffer.from("zz\r\n"))).toBeUndefined();
  });

  it("round trip: any body in any chunking decodes to itself", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 1, maxLength: 300 }), { maxLength: 8 }), (parts) => {
        const d = decodeChunked(encode(parts));
        expect(d?.complete).toBe(true);
        expect(d?.body.equals(Buffer.concat(parts.map((p) => Buffer.from(p))))).toBe(true);
      }),
    );
  });

  it("random bytes never throw", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        decodeChunked(Buffer.from(b));
      }),
    );
  });
});

describe("UDP_CHECK reply patterns", () => {
  it("compare up to the shorter length, masked nibbles match anything", () => {
    const p = { bytes: Uint8Array.from([0x80, 0x12]), mask: Uint8Array.from([0xf0, 0xff]) };
    expect(replyMismatch(Uint8Array.from([0x8f, 0x12, 0x99]), p)).toBe(-1);
    expect(replyMismatch(Uint8Array.from([0x8f]), p)).toBe(-1);
    expect(replyMismatch(Uint8Array.from([0x7f, 0x12]), p)).toBe(0);
    expect(replyMismatch(Uint8Array.from([0x80, 0x13]), p)).toBe(1);
  });
});

describe("PING_CHECK command line", () => {
  it("one echo, numeric, quiet, the timeout as -W, bindto as -I", () => {
    const c = {
      type: "PING_CHECK" as const,
      where: { file: "t", line: 1 },
      timing,
      target: { addr: ipToU32("192.168.10.3"), port: 0, bindto: ipToU32("192.168.10.253") },
    };
    expect(pingArgs(c)).toEqual(["-n", "-q", "-c", "1", "-W", "2.5", "-I", "192.168.10.253", "192.168.10.3"]);
  });
});

describe("listings", () => {
  it("ages", () => {
    expect([0, 420, 12_300, 245_000, 3 * 3600_000 + 7 * 60_000, 50 * 3600_000].map(age)).toEqual([
      "0.0s",
      "0.4s",
      "12s",
      "4m05s",
      "3h07m",
      "2d02h",
    ]);
  });
});

describe("the configuration reader on random input", () => {
  const words = [
    "virtual_server",
    "real_server",
    "10.0.0.1",
    "80",
    "{",
    "}",
    "HTTP_GET",
    "url",
    "path",
    "/",
    "delay_loop",
    "0.5",
    "weight",
    "#",
    "!",
    '"',
    "'",
    "\n",
    "include",
    "MISC_CHECK",
    "misc_path",
    "quorum",
    "TCP_CHECK",
    "alpha",
  ];
  it("either parses or throws a ConfigError", () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...words), { maxLength: 40 }), (ws) => {
        try {
          parseConfigText(ws.join(" "), "r.conf", "/nonexistent");
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
        }
      }),
      { numRuns: 300 },
    );
  });
});
