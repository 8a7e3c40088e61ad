/**
 * The kernel's IPVS connection-sync message, version 1 (net/netfilter/ipvs/ip_vs_sync.c): the
 * numbers of its layout, flags and options. The data path writes entries with them
 * (src/datapath/sync.ts); the control plane's codec (src/control/sync/wire.ts) reads and writes
 * whole messages. The layout itself is described in wire.ts.
 */

export const SYNC_PROTO_VER = 1;
/** 224.0.0.81 and UDP port 8848 (IP_VS_SYNC_GROUP, IP_VS_SYNC_PORT); port + thread id. */
export const IP_VS_SYNC_GROUP = 0xe0000051;
export const IP_VS_SYNC_PORT = 8848;
/** The master's default sync_maxlen: 1500 - 20 (IPv4) - 8 (UDP) (`start_sync_thread`). */
export const SYNC_DEFAULT_MAXLEN = 1472;

export const SYNC_MESG_HLEN = 8;
export const SYNC_V0_MESG_HLEN = 4;
export const SYNC_V4_LEN = 36;
export const SYNC_V6_LEN = 72;
export const STYPE_F_INET6 = 1;
export const SVER_SHIFT = 12;
export const SVER_MASK = 0x0fff;

export const IPVS_OPT_SEQ_DATA = 1;
export const IPVS_OPT_PE_DATA = 2;
export const IPVS_OPT_PE_NAME = 3;
export const IPVS_OPT_F_PARAM = 0x40;
/** lvs-ts: FULLNAT local address/port and PROXY-protocol shift (mandatory, outside 1..3). */
export const IPVS_OPT_LVSTS_FULLNAT = 0x81;
/** sizeof(struct ip_vs_sync_conn_options): two `struct ip_vs_seq` of three __u32. */
export const SYNC_SEQ_OPT_LEN = 24;
export const SYNC_FULLNAT_OPT_LEN = 16;
export const IP_VS_PEDATA_MAXLEN = 255;
export const IP_VS_PENAME_MAXLEN = 16;
/** nr_conns is a __u8. */
export const SYNC_MAX_CONNS = 255;

// Connection flags (include/uapi/linux/ip_vs.h). "Only flags 0..15 are sent to backup server".
export const IP_VS_CONN_F_FWD_MASK = 0x0007;
export const IP_VS_CONN_F_MASQ = 0x0000;
export const IP_VS_CONN_F_LOCALNODE = 0x0001;
export const IP_VS_CONN_F_TUNNEL = 0x0002;
export const IP_VS_CONN_F_DROUTE = 0x0003;
export const IP_VS_CONN_F_BYPASS = 0x0004;
/** Not in mainline: the Alibaba FULLNAT kernel's and DPVS's value. */
export const IP_VS_CONN_F_FULLNAT = 0x0005;
export const IP_VS_CONN_F_SYNC = 0x0020;
export const IP_VS_CONN_F_HASHED = 0x0040;
export const IP_VS_CONN_F_NOOUTPUT = 0x0080;
export const IP_VS_CONN_F_INACTIVE = 0x0100;
export const IP_VS_CONN_F_OUT_SEQ = 0x0200;
export const IP_VS_CONN_F_IN_SEQ = 0x0400;
export const IP_VS_CONN_F_SEQ_MASK = 0x0600;
export const IP_VS_CONN_F_NO_CPORT = 0x0800;
export const IP_VS_CONN_F_TEMPLATE = 0x1000;
export const IP_VS_CONN_F_ONE_PACKET = 0x2000;
/** Bits a backup keeps from a received entry (it then adds IP_VS_CONN_F_SYNC). */
export const IP_VS_CONN_F_BACKUP_MASK =
  IP_VS_CONN_F_FWD_MASK |
  IP_VS_CONN_F_NOOUTPUT |
  IP_VS_CONN_F_INACTIVE |
  IP_VS_CONN_F_SEQ_MASK |
  IP_VS_CONN_F_NO_CPORT |
  IP_VS_CONN_F_TEMPLATE;
/** Bits a backup updates on an existing connection. */
export const IP_VS_CONN_F_BACKUP_UPD_MASK = IP_VS_CONN_F_INACTIVE | IP_VS_CONN_F_SEQ_MASK;

/**
 * IP_VS_TCP_S_* (include/net/ip_vs.h): NONE 0, ESTABLISHED 1, SYN_SENT 2, SYN_RECV 3,
 * FIN_WAIT 4, TIME_WAIT 5, CLOSE 6, CLOSE_WAIT 7, LAST_ACK 8, LISTEN 9, SYNACK 10 — the same
 * numbers as src/datapath/conntrack/states.ts's TcpState (a test checks it), so states go on
 * the wire unchanged. UDP has one state (IP_VS_UDP_S_NORMAL 0); templates use
 * IP_VS_CTPL_S_NONE 0 / ASSURED 1.
 */
export const IP_VS_TCP_S_LAST = 11;
export const IP_VS_UDP_S_LAST = 1;
export const IP_VS_CTPL_S_LAST = 2;

/**
 * Kernel fwd bits by lvs-ts FwdMethod (src/tables/model.ts: MASQ 0, ROUTE 1, TUNNEL 2,
 * FULLNAT 3, LOCAL 4).
 */
export const FWD_TO_KERNEL: readonly number[] = [
  IP_VS_CONN_F_MASQ,
  IP_VS_CONN_F_DROUTE,
  IP_VS_CONN_F_TUNNEL,
  IP_VS_CONN_F_FULLNAT,
  IP_VS_CONN_F_LOCALNODE,
];
