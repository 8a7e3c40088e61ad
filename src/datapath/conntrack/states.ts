/**
 * IPVS connection states, their default timeouts and the TCP transition tables
 * (net/netfilter/ipvs/ip_vs_proto_tcp.c). Transitions are keyed by direction (input = client
 * to server, output = server to client, input-only = modes whose replies bypass the director)
 * and by the packet's flags with priority RST > SYN > FIN > ACK; a packet with none of them
 * moves the connection to CLOSE, as in the kernel.
 */

export const TcpState = {
  NONE: 0,
  ESTABLISHED: 1,
  SYN_SENT: 2,
  SYN_RECV: 3,
  FIN_WAIT: 4,
  TIME_WAIT: 5,
  CLOSE: 6,
  CLOSE_WAIT: 7,
  LAST_ACK: 8,
  LISTEN: 9,
  SYNACK: 10,
} as const;
export type TcpState = (typeof TcpState)[keyof typeof TcpState];
export const TCP_STATE_COUNT = 11;

export const TCP_STATE_NAMES: readonly string[] = [
  "NONE",
  "ESTABLISHED",
  "SYN_SENT",
  "SYN_RECV",
  "FIN_WAIT",
  "TIME_WAIT",
  "CLOSE",
  "CLOSE_WAIT",
  "LAST_ACK",
  "LISTEN",
  "SYNACK",
];

/** Default TCP timeouts in seconds, indexed by state. */
export const TCP_DEFAULT_TIMEOUTS: readonly number[] = [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120];

/**
 * States that count a connection as active for the dest's ActiveConn. Current kernels
 * (since 5.9, "ipvs: count pre-established TCP states as active") count the SYN states as
 * active too; we follow the kernel. Older kernels counted only ESTABLISHED.
 */
export const TCP_STATE_ACTIVE: readonly boolean[] = [
  false,
  true,
  true,
  true,
  false,
  false,
  false,
  false,
  false,
  false,
  true,
];

/** UDP has one state, printed "UDP"; ICMP entries print "ICMP". */
export const UDP_DEFAULT_TIMEOUT = 300;
export const ICMP_DEFAULT_TIMEOUT = 60;

/** Persistence template states (ip_vs_ctpl_state_name_table). */
export const TEMPLATE_STATE_NONE = 0;
export const TEMPLATE_STATE_ASSURED = 1;

export const DIR_INPUT = 0;
export const DIR_OUTPUT = 1;
export const DIR_INPUT_ONLY = 2;

const sES = TcpState.ESTABLISHED;
const sSS = TcpState.SYN_SENT;
const sSR = TcpState.SYN_RECV;
const sFW = TcpState.FIN_WAIT;
const sTW = TcpState.TIME_WAIT;
const sCL = TcpState.CLOSE;
const sCW = TcpState.CLOSE_WAIT;
const sLA = TcpState.LAST_ACK;
const sLI = TcpState.LISTEN;

// Rows: direction * 4 + event (syn, fin, ack, rst); columns: current state
// (NONE, ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, SYNACK).
// prettier-ignore
const TABLE: readonly (readonly number[])[] = [
  // INPUT
  [sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR], // syn
  [sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW], // fin
  [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES], // ack
  [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR], // rst
  // OUTPUT
  [sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR], // syn
  [sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW], // fin
  [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES], // ack
  [sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL], // rst
  // INPUT-ONLY
  [sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR], // syn
  [sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW], // fin
  [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES], // ack
  [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL], // rst
];

const sSA = TcpState.SYNACK;

/**
 * The kernel's tcp_states_dos, used while secure_tcp is on (src/control/defense.ts): a client's
 * ACK no longer establishes a connection the real server has not answered (SYN_RECV stays
 * SYN_RECV; the server's SYN+ACK makes it SYNACK, the server's ACK ESTABLISHED), and on links
 * where only the input is seen a SYN starts at SYNACK. Same rows and columns as TABLE.
 */
// prettier-ignore
const TABLE_DOS: readonly (readonly number[])[] = [
  // INPUT
  [sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSA], // syn
  [sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sSA], // fin
  [sCL, sES, sSS, sSR, sFW, sTW, sCL, sCW, sCL, sLI, sSA], // ack
  [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL], // rst
  // OUTPUT
  [sSS, sES, sSS, sSA, sSS, sSS, sSS, sSS, sSS, sLI, sSA], // syn
  [sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW], // fin
  [sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES], // ack
  [sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL], // rst
  // INPUT-ONLY
  [sSA, sES, sES, sSR, sSA, sSA, sSA, sSA, sSA, sSA, sSA], // syn
  [sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW], // fin
  [sCL, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES], // ack
  [sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL], // rst
];

function flatten(table: readonly (readonly number[])[]): Uint8Array {
  const out = new Uint8Array(12 * 16);
  for (let r = 0; r < 12; r++) {
    const row = table[r]!;
    for (let s = 0; s < TCP_STATE_COUNT; s++) out[r * 16 + s] = row[s]!;
  }
  return out;
}

/** Flattened transition table: index (dir * 4 + event) * 16 + state. */
export const TCP_TRANSITIONS = flatten(TABLE);
/** The same for secure_tcp (tcp_states_dos). */
export const TCP_TRANSITIONS_DOS = flatten(TABLE_DOS);

/** Event index from TCP flags (RST > SYN > FIN > ACK), or -1 for none of them. */
export function tcpEvent(flags: number): number {
  if (flags & 0x04) return 3;
  if (flags & 0x02) return 0;
  if (flags & 0x01) return 1;
  if (flags & 0x10) return 2;
  return -1;
}

/** Next TCP state for a packet with `flags` travelling in `dir` (DIR_*), by `table`. */
export function tcpNextState(state: number, dir: number, flags: number, table = TCP_TRANSITIONS): number {
  const ev = tcpEvent(flags);
  if (ev < 0) return TcpState.CLOSE;
  return table[(dir * 4 + ev) * 16 + state]!;
}
