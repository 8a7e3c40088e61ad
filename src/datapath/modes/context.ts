/**
 * The engine's ModeContext: one reused object; the engine sets `room` before each mode call.
 * Services and dests come from the tables by the connection's slot (only the modes that need
 * them look them up), routes and link properties from the network layer, ICMP errors through
 * the ICMP responder.
 */
import type { Dest, Service } from "../../tables/model.js";
import type { ServiceTable } from "../../tables/services.js";
import type { ConnTable } from "../conntrack/table.js";
import type { Icmp } from "../icmp.js";
import type { Net } from "../net/net.js";
import type { FrameView } from "../packet/view.js";
import type { ModeContext } from "./types.js";

export class ModeCall implements ModeContext {
  room = 0;
  drop = 0;
  private readonly net: Net;
  private readonly icmp: Icmp;
  private readonly ct: ConnTable;
  private readonly table: ServiceTable;

  constructor(net: Net, icmp: Icmp, ct: ConnTable, table: ServiceTable) {
    this.net = net;
    this.icmp = icmp;
    this.ct = ct;
    this.table = table;
  }

  service(c: number): Service | undefined {
    return this.table.services[this.ct.svc[c]!] ?? undefined;
  }

  dest(c: number): Dest | undefined {
    return this.table.dests[this.ct.dest[c]!] ?? undefined;
  }

  route(addr: number): number {
    return this.net.route(addr);
  }

  linkMtu(l: number): number {
    return this.net.links[l]!.mtu;
  }

  linkAddr(l: number): number {
    return this.net.links[l]!.primaryAddr();
  }

  sendIcmpError(v: FrameView, type: number, code: number, mtu: number, src: number): void {
    this.icmp.sendError(v, type, code, mtu, src);
  }
}
