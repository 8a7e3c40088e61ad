/**
 * Address ownership (docs/ha.md): the one bit per address that VRRP sets for the data path.
 * An address listed here is *disowned*: a VRRP instance that has it in its virtual_ipaddress is
 * not MASTER, so the director does not answer ARP (net/resolver.ts) or echo (icmp.ts) for it
 * and does not start new connections to it (engine.ts: `not_owner`); replies and packets of
 * connections that already exist still pass. The control plane (src/control/vrrp/manager.ts)
 * changes the set between batches; the data path only reads it. With no VRRP configured the
 * set is empty and each check is one branch.
 *
 * A short list scanned linearly: VRRP instances carry a handful of addresses. Nothing on the
 * read side allocates.
 */

export class Ownership {
  /** Disowned addresses (uint32): the first `count` entries. */
  private addrs = new Uint32Array(16);
  /** How many addresses are disowned; 0 without VRRP. */
  count = 0;

  /** True when `addr` (uint32 or int32) is disowned. */
  disowned(addr: number): boolean {
    const n = this.count;
    if (n === 0) return false;
    const a = addr >>> 0;
    const xs = this.addrs;
    for (let i = 0; i < n; i++) if (xs[i] === a) return true;
    return false;
  }

  /** Control plane: stop owning `addr` (idempotent). */
  disown(addr: number): void {
    const a = addr >>> 0;
    if (this.disowned(a)) return;
    if (this.count === this.addrs.length) {
      const grown = new Uint32Array(this.addrs.length * 2);
      grown.set(this.addrs);
      this.addrs = grown;
    }
    this.addrs[this.count++] = a;
  }

  /** Control plane: own `addr` again (idempotent). */
  own(addr: number): void {
    const a = addr >>> 0;
    const xs = this.addrs;
    for (let i = 0; i < this.count; i++) {
      if (xs[i] !== a) continue;
      xs[i] = xs[this.count - 1]!;
      this.count--;
      return;
    }
  }

  /** Control plane: `own` or `disown`. */
  set(addr: number, owned: boolean): void {
    if (owned) this.own(addr);
    else this.disown(addr);
  }

  /** The disowned addresses (control plane, for status output). */
  list(): number[] {
    return Array.from(this.addrs.subarray(0, this.count));
  }
}
