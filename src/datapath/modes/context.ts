/**
 * The engine's ModeContext: one reused object whose fields the engine sets before each mode
 * call, with routes and link properties from the network layer and ICMP errors through the
 * ICMP responder.
 */
import type { Dest, Service } from "../../tables/model.js";
import type { Icmp } from "../icmp.js";
import type { Net } from "../net/net.js";
import type { FrameView } from "../packet/view.js";
import type { ModeContext } from "./types.js";

export class ModeCall implements ModeContext {
  svc: Service | undefined = undefined;
  dest: Dest | undefined = undefined;
  room = 0;
  drop = 0;
  private readonly net: Net;
  private readonly icmp: Icmp;

  constructor(net: Net, icmp: Icmp) {
    this.net = net;
    this.icmp = icmp;
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
