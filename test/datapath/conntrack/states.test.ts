import { describe, expect, it } from "vitest";
import {
  DIR_INPUT,
  DIR_INPUT_ONLY,
  DIR_OUTPUT,
  TCP_DEFAULT_TIMEOUTS,
  TCP_STATE_NAMES,
  TcpState,
  tcpEvent,
  tcpNextState,
} from "../../../src/datapath/conntrack/states.js";

const S = TcpState;
const SYN = 0x02;
const FIN = 0x01;
const ACK = 0x10;
const RST = 0x04;

describe("IPVS TCP states", () => {
  it("has the kernel's default timeouts", () => {
    const byName = Object.fromEntries(TCP_STATE_NAMES.map((n, i) => [n, TCP_DEFAULT_TIMEOUTS[i]]));
    expect(byName).toEqual({
      NONE: 2,
      ESTABLISHED: 900,
      SYN_SENT: 120,
      SYN_RECV: 60,
      FIN_WAIT: 120,
      TIME_WAIT: 120,
      CLOSE: 10,
      CLOSE_WAIT: 60,
      LAST_ACK: 30,
      LISTEN: 120,
      SYNACK: 120,
    });
  });

  it("ranks flags RST > SYN > FIN > ACK", () => {
    expect(tcpEvent(SYN | RST | FIN | ACK)).toBe(3);
    expect(tcpEvent(SYN | FIN | ACK)).toBe(0);
    expect(tcpEvent(FIN | ACK)).toBe(1);
    expect(tcpEvent(ACK)).toBe(2);
    expect(tcpEvent(0)).toBe(-1);
  });

  // Each row: [from, direction, flags, to] read off ip_vs_proto_tcp.c's tcp_states table.
  const cases: [number, number, number, number][] = [
    // a NAT handshake, data and close as the director sees it
    [S.NONE, DIR_INPUT, SYN, S.SYN_RECV],
    [S.SYN_RECV, DIR_OUTPUT, SYN | ACK, S.SYN_RECV],
    [S.SYN_RECV, DIR_INPUT, ACK, S.ESTABLISHED],
    [S.ESTABLISHED, DIR_INPUT, FIN | ACK, S.CLOSE_WAIT],
    [S.CLOSE_WAIT, DIR_OUTPUT, FIN | ACK, S.TIME_WAIT],
    [S.TIME_WAIT, DIR_INPUT, ACK, S.TIME_WAIT],
    // server closes first
    [S.ESTABLISHED, DIR_OUTPUT, FIN | ACK, S.FIN_WAIT],
    [S.FIN_WAIT, DIR_INPUT, FIN | ACK, S.TIME_WAIT],
    [S.FIN_WAIT, DIR_INPUT, ACK, S.FIN_WAIT],
    // resets
    [S.ESTABLISHED, DIR_INPUT, RST, S.CLOSE],
    [S.ESTABLISHED, DIR_OUTPUT, RST | ACK, S.CLOSE],
    [S.SYN_RECV, DIR_INPUT, RST, S.SYN_RECV],
    [S.TIME_WAIT, DIR_OUTPUT, RST, S.TIME_WAIT],
    // input-only (DR/TUN): client FIN in ESTABLISHED goes to FIN_WAIT, not CLOSE_WAIT
    [S.ESTABLISHED, DIR_INPUT_ONLY, FIN | ACK, S.FIN_WAIT],
    [S.SYNACK, DIR_INPUT_ONLY, RST, S.CLOSE],
    [S.SYNACK, DIR_INPUT, RST, S.SYN_RECV],
    [S.NONE, DIR_INPUT_ONLY, SYN, S.SYN_RECV],
    [S.SYN_RECV, DIR_INPUT_ONLY, ACK, S.ESTABLISHED],
    // output SYN from NONE
    [S.NONE, DIR_OUTPUT, SYN, S.SYN_SENT],
    [S.LISTEN, DIR_OUTPUT, ACK, S.ESTABLISHED],
    [S.LAST_ACK, DIR_INPUT, ACK, S.CLOSE],
    [S.LAST_ACK, DIR_OUTPUT, ACK, S.LAST_ACK],
  ];
  it.each(cases)("%i --dir %i flags %i--> %i", (from, dir, flags, to) => {
    expect(tcpNextState(from, dir, flags)).toBe(to);
  });

  it("moves to CLOSE on a packet with none of SYN/FIN/ACK/RST", () => {
    expect(tcpNextState(S.ESTABLISHED, DIR_INPUT, 0x08)).toBe(S.CLOSE);
  });
});
