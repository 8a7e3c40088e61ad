/** keepalived.conf's global_defs `lvs_sync_daemon` (src/control/config/parser.ts). */
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../../src/control/config/parser.js";
import { ConfigError } from "../../../src/control/config/types.js";
import { ipToU32 } from "../../../src/lib/addr.js";

const VI = `vrrp_instance VI_1 {
  interface eth0
  virtual_router_id 51
  priority 100
  virtual_ipaddress {
    10.0.0.100/24
  }
}
`;

describe("lvs_sync_daemon", () => {
  it("reads the interface, the instance and every option", () => {
    const cfg = parseConfigText(
      `global_defs {
  lvs_sync_daemon eth1 VI_1 id 10 maxlen 1400 port 8850 ttl 2 group 224.0.0.82
}
${VI}`,
    );
    expect(cfg.lvsSyncDaemon).toMatchObject({
      interface: "eth1",
      instance: "VI_1",
      syncid: 10,
      maxlen: 1400,
      port: 8850,
      ttl: 2,
      group: ipToU32("224.0.0.82"),
    });
    expect(cfg.warnings.join("\n")).not.toContain("lvs_sync_daemon");
  });

  it("without id the sync id is the instance's virtual_router_id (as keepalived)", () => {
    const cfg = parseConfigText(`global_defs {\n  lvs_sync_daemon eth1 VI_1\n}\n${VI}`);
    expect(cfg.lvsSyncDaemon?.syncid).toBe(51);
    expect(cfg.lvsSyncDaemon?.port).toBeUndefined();
  });

  it("an unknown instance is a warning with file:line and no sync daemon (keepalived carries on)", () => {
    const cfg = parseConfigText(`global_defs {\n  lvs_sync_daemon eth1 VI_9\n}\n${VI}`, "k.conf");
    expect(cfg.lvsSyncDaemon).toBeUndefined();
    expect(cfg.warnings).toContainEqual(
      expect.stringMatching(/^k\.conf:2: lvs_sync_daemon: vrrp_instance VI_9 is not defined/),
    );
  });

  it.each([
    ["lvs_sync_daemon eth1", /expected INTERFACE VRRP_INSTANCE/],
    ["lvs_sync_daemon eth1 VI_1 id 256", /expected an integer 0\.\.255/],
    ["lvs_sync_daemon eth1 VI_1 ttl 0", /expected an integer 1\.\.255/],
    ["lvs_sync_daemon eth1 VI_1 group 10.0.0.1", /not a multicast address/],
    ["lvs_sync_daemon eth1 VI_1 port", /port needs a value/],
    ["lvs_sync_daemon eth1 VI_1 speed 5", /unknown option 'speed'/],
  ])("%s is refused with its line", (line, re) => {
    expect(() => parseConfigText(`global_defs {\n  ${line}\n}\n${VI}`, "k.conf")).toThrow(ConfigError);
    expect(() => parseConfigText(`global_defs {\n  ${line}\n}\n${VI}`, "k.conf")).toThrow(re);
  });
});
