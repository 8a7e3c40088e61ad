/**
 * Host names on input (netdb.ts hostToAddr, ipvsadm's host_to_addr()): numeric forms never reach
 * the resolver, names do, and the parser takes a name wherever ipvsadm does (-t, -u, -r).
 */
import { describe, expect, it } from "vitest";
import { parseArgs } from "../../src/control/ipvsadm.js";
import { hostToAddr, inetAton, systemHostLookup } from "../../src/control/netdb.js";

describe("hostToAddr", () => {
  it("takes inet_aton's numeric forms without a lookup", () => {
    const asked: string[] = [];
    const lookup = (n: string) => {
      asked.push(n);
      return undefined;
    };
    expect(hostToAddr("10.0.0.1", lookup)).toBe(0x0a000001);
    expect(hostToAddr("10.1", lookup)).toBe(0x0a000001);
    expect(hostToAddr("0x0a000001", lookup)).toBe(0x0a000001);
    // not numbers and not names: refused without asking the resolver
    expect(hostToAddr("10.0.0.300", lookup)).toBeUndefined();
    expect(hostToAddr("-x", lookup)).toBeUndefined();
    expect(hostToAddr("a b", lookup)).toBeUndefined();
    expect(hostToAddr("", lookup)).toBeUndefined();
    expect(asked).toEqual([]);
  });

  it("asks the resolver for a name and returns its answer", () => {
    const db: Record<string, number> = { "www.example.test": inetAton("192.0.2.7")! };
    const asked: string[] = [];
    const lookup = (n: string) => {
      asked.push(n);
      return db[n];
    };
    expect(hostToAddr("www.example.test", lookup)).toBe(inetAton("192.0.2.7"));
    expect(hostToAddr("nothing.example.test", lookup)).toBeUndefined();
    expect(asked).toEqual(["www.example.test", "nothing.example.test"]);
  });

  it("the system resolver finds localhost (/etc/hosts) and not an .invalid name", () => {
    expect(systemHostLookup("localhost")).toBe(inetAton("127.0.0.1"));
    expect(systemHostLookup("no-such-host.invalid")).toBeUndefined();
  });
});

describe("parseArgs with host names", () => {
  it("-t/-u/-r take a name, as ipvsadm's parse_service does", () => {
    const r = parseArgs(["-a", "-t", "localhost:http", "-r", "localhost:8080", "-m"]);
    expect(r.ok && r.cmd.kind === "add-dest" ? [r.cmd.svc.addr, r.cmd.svc.port, r.cmd.dest.addr] : r).toEqual(
      [inetAton("127.0.0.1"), 80, inetAton("127.0.0.1")],
    );
    const u = parseArgs(["-A", "-u", "localhost:53"]);
    expect(u.ok && u.cmd.kind === "add-service" ? u.cmd.svc.addr : u).toBe(inetAton("127.0.0.1"));
    const bad = parseArgs(["-A", "-t", "no-such-host.invalid:80"]);
    expect(bad).toEqual({
      ok: false,
      error: { message: "illegal virtual server address[:port] specified", code: 2, fatal: true },
    });
  });
});
