/**
 * The data path's notion of time. The engine sets `nowMs` once per batch from its backend's
 * clock (a fake clock in tests), so code on the per-packet path (conntrack expiry, schedulers
 * with caches such as lblc) reads a number instead of calling Date.now() per packet.
 */
export const clock = {
  /** Milliseconds, monotonic, origin arbitrary. */
  nowMs: 0,
};
