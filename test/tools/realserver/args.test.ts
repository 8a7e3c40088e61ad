import { describe, expect, it } from "vitest";
import {
  DEFAULT_STATE_DIR,
  defaultTunName,
  parseHostAddr,
  parseRsArgs,
} from "../../../src/tools/realserver/args.js";
import { RealServerError, RsErrorCode } from "../../../src/tools/realserver/errors.js";
import { arpSysctls, sysctlName } from "../../../src/tools/realserver/setup.js";
import { stateStem } from "../../../src/tools/realserver/state.js";

function fails(argv: string[]): RealServerError {
  try {
    parseRsArgs(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(RealServerError);
    return err as RealServerError;
  }
  throw new Error(`parsed: ${argv.join(" ")}`);
}

describe("lvs-realserver arguments", () => {
  it("parses dr with several VIPs, lists, devices and a namespace", () => {
    const a = parseRsArgs([
      "dr",
      "--vip",
      "10.0.0.100",
      "--vip=10.0.0.101,10.0.0.100",
      "--dev",
      "eth0",
      "--netns",
      "rs1",
    ]);
    expect(a.command).toBe("dr");
    expect(a.vips).toEqual([0x0a000064, 0x0a000065]);
    expect(a.devs).toEqual(["eth0"]);
    expect(a.netns).toBe("rs1");
    expect(a.undo).toBe(false);
    expect(a.stateDir).toBe(DEFAULT_STATE_DIR);
  });

  it("parses tun with its options; --undo may come anywhere and needs no VIP", () => {
    const a = parseRsArgs([
      "tun",
      "--vip",
      "10.0.0.100",
      "--dev",
      "eth1",
      "--local",
      "192.0.2.5",
      "--tun-name",
      "ipip0",
      "--mode",
      "mmsg",
      "--daemon",
      "--pid-file",
      "/run/x.pid",
    ]);
    expect(a).toMatchObject({
      command: "tun",
      devs: ["eth1"],
      locals: [0xc0000205],
      tunName: "ipip0",
      mode: "mmsg",
    });
    expect(a.daemon).toBe(true);
    expect(parseRsArgs(["--undo", "dr", "--netns", "x"]).undo).toBe(true);
    expect(parseRsArgs(["tun", "--undo"]).command).toBe("tun");
  });

  it("takes the state directory from the environment or --state-dir", () => {
    expect(parseRsArgs(["status"], { LVS_REALSERVER_STATE_DIR: "/tmp/s" }).stateDir).toBe("/tmp/s");
    expect(
      parseRsArgs(["status", "--state-dir", "/tmp/t"], { LVS_REALSERVER_STATE_DIR: "/tmp/s" }).stateDir,
    ).toBe("/tmp/t");
  });

  it("refuses bad addresses with BAD_ADDRESS (exit status 2)", () => {
    for (const v of [
      "10.0.0.256",
      "10.0.0",
      "x",
      "",
      "0.1.2.3",
      "127.0.0.2",
      "224.0.0.1",
      "255.255.255.255",
    ]) {
      const e = fails(["dr", "--vip", v || ","]);
      expect([RsErrorCode.BAD_ADDRESS, RsErrorCode.USAGE]).toContain(e.code);
      expect(e.exitCode).toBe(2);
    }
    expect(fails(["dr", "--vip", "10.0.0.300"]).message).toMatch(/10\.0\.0\.300/);
    expect(() => parseHostAddr("192.0.2.1", "x")).not.toThrow();
  });

  it("refuses bad usage with USAGE", () => {
    const cases: string[][] = [
      [],
      ["frob"],
      ["dr"],
      ["dr", "--vip"],
      ["dr", "--vip", "10.0.0.1", "extra"],
      ["dr", "--vip", "10.0.0.1", "--bogus"],
      ["dr", "--vip", "10.0.0.1", "--daemon"],
      ["tun", "--vip", "10.0.0.1"],
      ["tun", "--vip", "10.0.0.1", "--dev", "a", "--dev", "b"],
      ["tun", "--vip", "10.0.0.1", "--dev", "a", "--pid-file", "/x"],
      ["tun", "--vip", "10.0.0.1", "--dev", "a", "--mode", "fast"],
      ["tun", "--undo", "--daemon"],
      ["dr", "--vip", "10.0.0.1", "--dev", "this-name-is-too-long"],
      ["dr", "--vip", "10.0.0.1", "--dev", "a/b"],
      ["dr", "--vip", "10.0.0.1", "--undo=yes"],
      ["status", "--vip", "10.0.0.1"],
    ];
    for (const c of cases) {
      const e = fails(c);
      expect(e.code, c.join(" ")).toBe(RsErrorCode.USAGE);
      expect(e.message).toMatch(/--help/);
    }
  });

  it("help and version need no command", () => {
    expect(parseRsArgs(["--help"]).help).toBe(true);
    expect(parseRsArgs(["-V"]).version).toBe(true);
  });

  it("names: TUN device, sysctl display, state file stem, the ARP sysctls", () => {
    expect(defaultTunName("eth0")).toBe("rs-eth0");
    expect(defaultTunName("abcdefghijklmno")).toBe("rs-abcdefghijkl");
    expect(sysctlName("net/ipv4/conf/eth0.100/arp_ignore")).toBe("net.ipv4.conf.eth0/100.arp_ignore");
    expect(stateStem("cookie:42")).toBe("netns-cookie-42");
    expect(arpSysctls(["eth0"])).toEqual([
      ["net/ipv4/conf/all/arp_ignore", "1"],
      ["net/ipv4/conf/all/arp_announce", "2"],
      ["net/ipv4/conf/lo/arp_ignore", "1"],
      ["net/ipv4/conf/lo/arp_announce", "2"],
      ["net/ipv4/conf/eth0/arp_ignore", "1"],
      ["net/ipv4/conf/eth0/arp_announce", "2"],
    ]);
  });
});
