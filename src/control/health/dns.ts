/**
 * DNS_CHECK (keepalived's check_dns): one query over UDP from a connected socket, recursion
 * desired, a random id, QTYPE `type` (SOA), QCLASS IN, QNAME `name` ("" = the root). Replies
 * with another id, or that are queries, are ignored; the first reply that matches decides: an
 * RCODE of 0 is success, anything else a failure. As in keepalived 2.2 the answer section is
 * not looked at. No reply within connect_timeout, or an ICMP error, is a failure.
 */

import { randomInt } from "node:crypto";
import { createSocket } from "node:dgram";
import { u32ToIp } from "../../lib/addr.js";
import type { DnsCheckConfig } from "../config/types.js";
import { addrPort, errnoText, type ProbeResult, secs } from "./probe.js";

/** The query keepalived sends for `name` and `qtype`, with `id`. */
export function dnsQuery(id: number, name: string, qtype: number): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head.writeUInt16BE(0x0100, 2); // RD
  head.writeUInt16BE(1, 4); // QDCOUNT
  parts.push(head);
  for (const label of name.split(".")) {
    if (label === "") continue;
    const b = Buffer.from(label, "latin1");
    parts.push(Buffer.from([b.length & 0xff]), b);
  }
  const tail = Buffer.alloc(5);
  tail.writeUInt16BE(qtype, 1);
  tail.writeUInt16BE(1, 3); // IN
  parts.push(tail);
  return Buffer.concat(parts);
}

export function probeDns(c: DnsCheckConfig, signal: AbortSignal): Promise<ProbeResult> {
  const label = `DNS_CHECK ${addrPort(c.target)}`;
  const timeout = c.timing.connectTimeout;
  return new Promise((resolve) => {
    const sock = createSocket("udp4");
    const id = randomInt(0, 65536);
    let settled = false;
    const timer = setTimeout(() => finish(false, `no reply within ${secs(timeout)}`), timeout * 1000);
    const onAbort = (): void => finish(false, "stopped");
    signal.addEventListener("abort", onAbort, { once: true });
    function finish(ok: boolean, detail: string): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      try {
        sock.close();
      } catch {
        // already closed
      }
      resolve({ ok, reason: `${label} ${detail}` });
    }
    sock.on("error", (err: NodeJS.ErrnoException) =>
      finish(false, err.code === "ECONNREFUSED" ? "port unreachable" : errnoText(err)),
    );
    sock.on("message", (msg: Buffer) => {
      if (msg.length < 12 || msg.readUInt16BE(0) !== id) return;
      const flags = msg.readUInt16BE(2);
      if ((flags & 0x8000) === 0) return; // a query, not a reply
      const rcode = flags & 0x000f;
      if (rcode !== 0) finish(false, `rcode ${rcode}`);
      else finish(true, `rcode 0 (${msg.readUInt16BE(6)} answers)`);
    });
    const send = (): void => {
      sock.connect(c.target.port, u32ToIp(c.target.addr), () => {
        sock.send(dnsQuery(id, c.name, c.qtype), (err) => {
          if (err) finish(false, errnoText(err));
        });
      });
    };
    if (c.target.bindto !== undefined || c.target.bindPort !== undefined) {
      sock.bind(
        {
          port: c.target.bindPort ?? 0,
          ...(c.target.bindto !== undefined ? { address: u32ToIp(c.target.bindto) } : {}),
        },
        send,
      );
    } else send();
  });
}
