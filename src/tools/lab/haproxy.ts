/**
 * HAProxy as a lab reference: a throw-away tcp-mode configuration (layer-4 proxy, no HTTP
 * parsing) that balances one frontend round-robin over the real servers, like an lvsd service.
 * Started in the foreground (`haproxy -db -f FILE`) in the director's namespace; the lab kills
 * it with the namespace.
 */
import { mkdirSync, writeFileSync } from "node:fs";

export interface HaproxyOptions {
  /** The address and port the frontend listens on (the VIP). */
  bind: string;
  /** The real servers, "addr:port" each, balanced in this order. */
  servers: readonly string[];
  /** Worker threads (default 1: one CPU, as lvsd's data path). */
  threads?: number;
  /** Concurrent connections (default 4096; HAProxy needs two descriptors per connection). */
  maxconn?: number;
}

/** The configuration text (tcp mode, balance roundrobin, no logging, no health checks). */
export function haproxyConfig(o: HaproxyOptions): string {
  if (o.servers.length === 0) throw new Error("haproxy: no servers");
  const threads = o.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`haproxy: bad thread count ${threads}`);
  const maxconn = o.maxconn ?? 4096;
  const servers = o.servers.map((s, i) => `  server rs${i + 1} ${s}`);
  return [
    "global",
    `  nbthread ${threads}`,
    `  maxconn ${maxconn}`,
    "defaults",
    "  mode tcp",
    "  timeout connect 5s",
    "  timeout client 60s",
    "  timeout server 60s",
    "frontend vip",
    `  bind ${o.bind}`,
    "  default_backend real",
    "backend real",
    "  balance roundrobin",
    ...servers,
    "",
  ].join("\n");
}

/** Write DIR/haproxy.cfg and return its path. */
export function haproxyConf(dir: string, o: HaproxyOptions): string {
  mkdirSync(dir, { recursive: true });
  const f = `${dir}/haproxy.cfg`;
  writeFileSync(f, haproxyConfig(o));
  return f;
}
