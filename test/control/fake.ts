/**
 * A director without a data path for control-plane tests: a real ServiceTable, a list of
 * connection entries, the three timeouts, and optionally a rate source.
 *
 * The table resolves schedulers through the real registry and falls back to inert stand-ins
 * for the kernel's other names, so these tests do not depend on which schedulers have landed.
 */

import type { RateSource } from "../../src/control/estimator.js";
import { parseServices } from "../../src/control/netdb.js";
import type { ConnEntry, ControlTarget, Timeouts } from "../../src/control/target.js";
import { getScheduler } from "../../src/datapath/schedulers/index.js";
import type { SchedulerModule } from "../../src/tables/model.js";
import { ServiceTable } from "../../src/tables/services.js";

const KERNEL_SCHEDULERS = [
  "rr",
  "wrr",
  "lc",
  "wlc",
  "lblc",
  "lblcr",
  "dh",
  "sh",
  "sed",
  "nq",
  "fo",
  "ovf",
  "mh",
  "twos",
];
const STAND_IN_FLAGS: Record<string, string[]> = {
  sh: ["sh-fallback", "sh-port"],
  mh: ["mh-fallback", "mh-port"],
};

export function resolveScheduler(name: string): SchedulerModule | undefined {
  const real = getScheduler(name);
  if (real) return real;
  if (!KERNEL_SCHEDULERS.includes(name)) return undefined;
  const flags = STAND_IN_FLAGS[name];
  return { name, ...(flags ? { flags } : {}), create: () => ({ select: () => undefined }) };
}

export interface FakeTarget extends ControlTarget {
  connList: ConnEntry[];
  timeouts: Timeouts;
  rates?: RateSource;
}

export function fakeTarget(opts: { connTabSize?: number; rates?: RateSource } = {}): FakeTarget {
  const t: FakeTarget = {
    table: new ServiceTable(resolveScheduler),
    connList: [],
    timeouts: { tcp: 900, tcpfin: 120, udp: 300 },
    connTabSize: opts.connTabSize ?? 4096,
    conns() {
      return this.connList;
    },
    getTimeouts() {
      return { ...this.timeouts };
    },
    setTimeouts(n: Timeouts) {
      if (n.tcp) this.timeouts.tcp = n.tcp;
      if (n.tcpfin) this.timeouts.tcpfin = n.tcpfin;
      if (n.udp) this.timeouts.udp = n.udp;
    },
  };
  if (opts.rates) t.rates = opts.rates;
  return t;
}

/** A fixed services(5) table so name output does not depend on the host's /etc/services. */
export const TEST_SERVICES = parseServices(`
ssh		22/tcp
domain		53/tcp
domain		53/udp
http		80/tcp		www
https		443/tcp
https		443/udp
http-alt	8080/tcp	webcache
`);

/** Parse a dotted quad in tests. */
export function ip(s: string): number {
  const p = s.split(".").map(Number);
  return (((p[0] ?? 0) << 24) | ((p[1] ?? 0) << 16) | ((p[2] ?? 0) << 8) | (p[3] ?? 0)) >>> 0;
}
