/**
 * Run-time knobs named after the kernel's net.ipv4.vs.* sysctls. The control plane changes
 * them; the data path reads them per packet (plain numeric fields).
 */
export class Sysctl {
  /**
   * 1: a packet for a connection whose dest was deleted (or failed) expires that connection
   * and is dropped, so the client's next attempt is rescheduled. The kernel's default is 0;
   * ours is 1 because black-holed flows to removed servers are the most common LVS complaint
   * (see docs/architecture.md). Weight changes never expire connections.
   */
  expireNodestConn = 1;
  /** 1: a persistence template whose dest has weight 0 is dropped and the client rescheduled. */
  expireQuiescentTemplate = 0;
  /** 1 (kernel default): a SYN hitting a TIME_WAIT/CLOSE entry is rescheduled as a new connection. */
  connReuseMode = 1;
  /** 1: create TCP connections on any packet, not only SYN (kernel default 0). */
  sloppyTcp = 0;
  /** 1: NAT-mode packets to a dest with no route back are still sent (no-op here, kept for parity). */
  conntrack = 0;
  /**
   * Connection sync (master): an entry is sent when its input packet count modulo
   * `syncPeriod` equals `syncThreshold` (the kernel's sync_threshold pair, "3 50"); with
   * `syncPeriod` 0 only once, at `syncThreshold`. TCP state changes are sent at once.
   */
  syncThreshold = 3;
  syncPeriod = 50;
  /** Seconds: resend an entry only when its expiry moved by this much (0: off; kernel default). */
  syncRefreshPeriod = 0;
  /** Retries of a held-back resend, at syncRefreshPeriod / 8 (0..3). */
  syncRetries = 0;
  /** 1: connections under a persistence template are not synced, only their templates. */
  syncPersistMode = 0;
  /**
   * Reverse-path filter for what may create state (a new connection, an echo request): 1 (strict,
   * default): the source must be routed out of the link the packet came in on; 2 (loose): routed
   * out of some link; 0: off (Linux's net.ipv4.conf.*.rp_filter).
   */
  rpFilter = 1;
  /**
   * The kernel's defence against memory exhaustion (src/control/defense.ts, docs/security.md):
   * `amemthresh` is the "available memory" threshold in 4 KiB pages, lvsd's available memory
   * being the free room of its connection table; `drop_entry`, `drop_packet`, `secure_tcp` are
   * 0 (off), 1 (automatic: on while memory is short, shown as 2), 2 (on now, automatic), 3 (always
   * on); `am_droprate` is drop_packet's rate in mode 3 (one new connection in N is dropped).
   */
  amemthresh = 1024;
  amDroprate = 10;
  dropEntry = 0;
  dropPacket = 0;
  secureTcp = 0;
  /**
   * The embryonic-entry bound: TCP connections whose handshake is not complete (NONE, SYN_SENT,
   * SYN_RECV, SYNACK) may hold at most this percentage of the connection table (1-100); past it a
   * new connection evicts an embryonic one, or is refused (`embryonic_limit`). So a SYN flood
   * leaves the rest of the table to established connections.
   */
  embryonicShare = 75;
  /** Called after a defence knob was set (lvsd re-evaluates the defence at once, as the kernel). */
  onDefenseChange: (() => void) | null = null;
}
