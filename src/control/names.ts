/**
 * Host names for listings without -n (ipvsadm prints gethostbyaddr's name for each address).
 * lvsd's thread forwards packets, so it never waits on a resolver: before a listing is sent, the
 * control server asks for the names of the addresses it will print (getnameinfo(3) in libuv's
 * thread pool, so /etc/hosts and DNS as nsswitch.conf says), waits at most LOOKUP_BUDGET_MS for
 * them with the event loop free, and the listing then prints the names it has and numbers for
 * the rest. Answers are kept for TTL_MS (no name found: kept too, as a number).
 */
import { promises as dns } from "node:dns";
import { u32ToIp as ipToString } from "../lib/addr.js";

/** How long a listing waits for names, at most. */
export const LOOKUP_BUDGET_MS = 1000;
/** Most addresses a listing asks names for (a -c listing of a big table prints numbers beyond). */
export const LOOKUP_MAX_ADDRS = 1024;
const TTL_MS = 60_000;
/** Lookups in flight at once. */
const CONCURRENCY = 16;

/** getnameinfo for one address: the name, or undefined when there is none. */
export type NameLookup = (addr: string) => Promise<string | undefined>;

const systemLookup: NameLookup = async (addr) => {
  try {
    const r = await dns.lookupService(addr, 0);
    return r.hostname && r.hostname !== addr ? r.hostname : undefined;
  } catch {
    return undefined;
  }
};

export class HostNames {
  private readonly cache = new Map<number, { name: string | undefined; until: number }>();
  private readonly lookup: NameLookup;
  private readonly now: () => number;

  constructor(lookup: NameLookup = systemLookup, now: () => number = Date.now) {
    this.lookup = lookup;
    this.now = now;
  }

  /** The name known for `addr` now (no lookup), or undefined. */
  hostOf(addr: number): string | undefined {
    const e = this.cache.get(addr >>> 0);
    return e && e.until > this.now() ? e.name : undefined;
  }

  /**
   * Look up the names of `addrs` not known yet (at most `max` of them), waiting at most
   * `budgetMs`; lookups still running then finish in the background and fill the cache.
   */
  async resolve(addrs: Iterable<number>, budgetMs = LOOKUP_BUDGET_MS, max = LOOKUP_MAX_ADDRS): Promise<void> {
    const t = this.now();
    const todo: number[] = [];
    const seen = new Set<number>();
    for (const a of addrs) {
      const k = a >>> 0;
      if (seen.has(k)) continue;
      seen.add(k);
      const e = this.cache.get(k);
      if (e && e.until > t) continue;
      todo.push(k);
      if (todo.length >= max) break;
    }
    if (todo.length === 0) return;
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const a = todo[next++]!;
        const name = await this.lookup(ipToString(a));
        this.cache.set(a, { name, until: this.now() + TTL_MS });
      }
    };
    const all = Promise.all(Array.from({ length: Math.min(CONCURRENCY, todo.length) }, worker));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise<void>((r) => (timer = setTimeout(r, budgetMs)))]);
    clearTimeout(timer);
  }
}
