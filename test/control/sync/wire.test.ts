/**
 * The IPVS sync message codec (src/control/sync/wire.ts): goldens written by hand, field by
 * field, from the kernel's structs (`struct ip_vs_sync_mesg`, `struct ip_vs_sync_v4`, the
 * options and padding of `ip_vs_sync_conn()` in net/netfilter/ipvs/ip_vs_sync.c), independent
 * of the encoder; refusals (one row per status); round trip, splitting and random/mutated bytes
 * with fast-check.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  connFlagsFromKernel,
  connFlagsToKernel,
  fwdFromKernel,
  fwdToKernel,
} from "../../../src/control/sync/flags.js";
import {
  encodeSyncMessage,
  IP_VS_CONN_F_DROUTE,
  IP_VS_CONN_F_FULLNAT,
  IP_VS_CONN_F_HASHED,
  IP_VS_CONN_F_IN_SEQ,
  IP_VS_CONN_F_INACTIVE,
  IP_VS_CONN_F_NO_CPORT,
  IP_VS_CONN_F_NOOUTPUT,
  IP_VS_CONN_F_ONE_PACKET,
  IP_VS_CONN_F_OUT_SEQ,
  IP_VS_CONN_F_SEQ_MASK,
  IP_VS_CONN_F_TEMPLATE,
  IP_VS_TCP_S_LAST,
  parseSyncMessage,
  SYNC_MAX_CONNS,
  SYNC_MESG_HLEN,
  SYNC_STATUS_COUNT,
  SYNC_STATUS_NAMES,
  type SyncConn,
  SyncStatus,
  SyncWireError,
  syncEntryLen,
  synProxyFromSeq,
  synProxySeq,
} from "../../../src/control/sync/wire.js";
import { TCP_STATE_NAMES, TcpState } from "../../../src/datapath/conntrack/states.js";
import {
  CONN_F_INACTIVE,
  CONN_F_NOOUTPUT,
  CONN_F_ONE_PACKET,
  CONN_F_TEMPLATE,
} from "../../../src/datapath/conntrack/table.js";
import { ipToU32 } from "../../../src/lib/addr.js";
import { FwdMethod } from "../../../src/tables/model.js";
import { hex, toHex } from "../../datapath/packet/helpers.js";

const IP = ipToU32;

/**
 * Golden 1: syncid 7, three IPv4 entries. Offsets from the start of the message.
 */
const GOLDEN_1 = hex(
  `
  00                    # 0   reserved (must be 0: v0's nr_conns)
  07                    # 1   syncid 7
  009d                  # 2   size 157 (8 + 62 + pad 2 + 36 + 49)
  03                    # 4   nr_conns 3
  01                    # 5   version 1
  0000                  # 6   spare

  # entry 1 at 8: TCP NAT connection with FTP-style sequence adjustment
  00                    # 8   type 0 (IPv4)
  06                    # 9   protocol TCP
  003e                  # 10  ver_size: version 0, size 62 (36 + 2 + 24)
  00000600              # 12  flags: MASQ (0) | OUT_SEQ 0x200 | IN_SEQ 0x400
  0001                  # 16  state ESTABLISHED
  9c40                  # 18  cport 40000
  0015                  # 20  vport 21
  0849                  # 22  dport 2121
  00000000              # 24  fwmark
  00000384              # 28  timeout 900 s
  c000020a              # 32  caddr 192.0.2.10
  c6336401              # 36  vaddr 198.51.100.1
  0a000002              # 40  daddr 10.0.0.2
  01 18                 # 44  IPVS_OPT_SEQ_DATA, 24 bytes
  11223344 00000005 00000000   # in_seq: init_seq, delta, previous_delta
  a0b0c0d0 fffffffe 00000003   # out_seq
  0000                  # 70  padding to 72

  # entry 2 at 72: persistence template of a fwmark service, DR
  00                    # 72  type 0
  00                    # 73  protocol 0 (IPPROTO_IP: fwmark service)
  0024                  # 74  size 36
  00001003              # 76  flags: TEMPLATE 0x1000 | DROUTE 3
  0000                  # 80  state 0 (IP_VS_CTPL_S_NONE)
  0000                  # 82  cport 0
  0050                  # 84  vport 80
  0050                  # 86  dport 80
  0000002a              # 88  fwmark 42
  00000168              # 92  timeout 360 s
  c000020a              # 96  caddr 192.0.2.10
  c6336401              # 100 vaddr 198.51.100.1
  0a000003              # 104 daddr 10.0.0.3

  # entry 3 at 108 (already aligned): SIP persistence-engine template, UDP
  00                    # 108 type 0
  11                    # 109 protocol UDP
  0031                  # 110 size 49 (36 + 2 + 6 + 2 + 3)
  00001000              # 112 flags: TEMPLATE | MASQ
  0000                  # 116 state 0
  0000                  # 118 cport 0
  13c4                  # 120 vport 5060
  13c4                  # 122 dport 5060
  00000000              # 124 fwmark
  0000003c              # 128 timeout 60 s
  c0000214              # 132 caddr 192.0.2.20
  c6336401              # 136 vaddr 198.51.100.1
  0a000004              # 140 daddr 10.0.0.4
  02 06 616263313233    # 144 IPVS_OPT_PE_DATA, 6 bytes "abc123"
  03 03 736970          # 152 IPVS_OPT_PE_NAME, 3 bytes "sip"; ends at 157, no padding
`.replace(/#.*$/gm, ""),
);

const GOLDEN_1_ENTRIES: SyncConn[] = [
  {
    protocol: 6,
    flags: IP_VS_CONN_F_SEQ_MASK,
    state: TcpState.ESTABLISHED,
    cport: 40000,
    vport: 21,
    dport: 2121,
    fwmark: 0,
    timeout: 900,
    caddr: IP("192.0.2.10"),
    vaddr: IP("198.51.100.1"),
    daddr: IP("10.0.0.2"),
    seq: {
      in: { initSeq: 0x11223344, delta: 5, previousDelta: 0 },
      out: { initSeq: 0xa0b0c0d0, delta: 0xfffffffe, previousDelta: 3 },
    },
  },
  {
    protocol: 0,
    flags: IP_VS_CONN_F_TEMPLATE | IP_VS_CONN_F_DROUTE,
    state: 0,
    cport: 0,
    vport: 80,
    dport: 80,
    fwmark: 42,
    timeout: 360,
    caddr: IP("192.0.2.10"),
    vaddr: IP("198.51.100.1"),
    daddr: IP("10.0.0.3"),
  },
  {
    protocol: 17,
    flags: IP_VS_CONN_F_TEMPLATE,
    state: 0,
    cport: 0,
    vport: 5060,
    dport: 5060,
    fwmark: 0,
    timeout: 60,
    caddr: IP("192.0.2.20"),
    vaddr: IP("198.51.100.1"),
    daddr: IP("10.0.0.4"),
    peData: new Uint8Array([0x61, 0x62, 0x63, 0x31, 0x32, 0x33]),
    peName: "sip",
  },
];

/** Golden 2: syncid 0, one FULLNAT entry with the lvs-ts option. */
const GOLDEN_2 = hex(
  `
  00 00 003e 01 01 0000 # header: reserved, syncid 0, size 62 (8 + 54), 1 conn, v1, spare
  00                    # 8   type 0
  06                    # 9   TCP
  0036                  # 10  size 54 (36 + 2 + 16)
  00000105              # 12  flags: FULLNAT 5 | INACTIVE 0x100
  0003                  # 16  state SYN_RECV
  c738                  # 18  cport 51000
  01bb                  # 20  vport 443
  20fb                  # 22  dport 8443
  00000000              # 24  fwmark
  0000003c              # 28  timeout 60 s
  cb007107              # 32  caddr 203.0.113.7
  c6336402              # 36  vaddr 198.51.100.2
  0a000005              # 40  daddr 10.0.0.5
  81 10                 # 44  IPVS_OPT_LVSTS_FULLNAT (mandatory, 0x40 clear), 16 bytes
  0a0000fe              # 46  laddr 10.0.0.254
  0401                  # 50  lport 1025
  0000                  # 52  reserved
  01020304              # 54  proxy_isn
  00000068              # 58  proxy_delta 104; ends at 62
`.replace(/#.*$/gm, ""),
);

const GOLDEN_2_ENTRY: SyncConn = {
  protocol: 6,
  flags: IP_VS_CONN_F_FULLNAT | IP_VS_CONN_F_INACTIVE,
  state: TcpState.SYN_RECV,
  cport: 51000,
  vport: 443,
  dport: 8443,
  fwmark: 0,
  timeout: 60,
  caddr: IP("203.0.113.7"),
  vaddr: IP("198.51.100.2"),
  daddr: IP("10.0.0.5"),
  fullnat: { laddr: IP("10.0.0.254"), lport: 1025, proxyIsn: 0x01020304, proxyDelta: 104 },
};

/** A minimal entry for refusal tests (TCP ESTABLISHED, DR). */
const PLAIN: SyncConn = {
  protocol: 6,
  flags: IP_VS_CONN_F_DROUTE,
  state: 1,
  cport: 1234,
  vport: 80,
  dport: 80,
  fwmark: 0,
  timeout: 900,
  caddr: IP("192.0.2.1"),
  vaddr: IP("198.51.100.1"),
  daddr: IP("10.0.0.9"),
};

function one(entries: SyncConn[], syncid = 1): Buffer {
  const m = encodeSyncMessage(syncid, entries, 65535);
  expect(m).toHaveLength(1);
  return m[0]!;
}

/** Rewrites the header's size to the buffer's length (after an edit that changed it). */
function fixSize(b: Uint8Array): Uint8Array {
  b[2] = b.length >> 8;
  b[3] = b.length & 0xff;
  return b;
}

describe("goldens", () => {
  it("GOLDEN_1: the encoder writes the hand-built bytes", () => {
    expect(GOLDEN_1.length).toBe(157);
    expect(toHex(one(GOLDEN_1_ENTRIES, 7))).toBe(toHex(GOLDEN_1));
  });

  it("GOLDEN_1: every field parses", () => {
    const r = parseSyncMessage(GOLDEN_1);
    expect(r.status).toBe(SyncStatus.OK);
    expect(r.syncid).toBe(7);
    expect(r.skipped).toEqual([]);
    expect(r.entries).toEqual(GOLDEN_1_ENTRIES);
  });

  it("GOLDEN_2: the FULLNAT extension, both ways", () => {
    expect(GOLDEN_2.length).toBe(62);
    expect(toHex(one([GOLDEN_2_ENTRY], 0))).toBe(toHex(GOLDEN_2));
    const r = parseSyncMessage(GOLDEN_2);
    expect(r.status).toBe(SyncStatus.OK);
    expect(r.entries).toEqual([GOLDEN_2_ENTRY]);
  });

  it("parses from a buffer at a non-zero byteOffset", () => {
    const backing = new Uint8Array(GOLDEN_1.length + 13).fill(0xa5);
    backing.set(GOLDEN_1, 13);
    const r = parseSyncMessage(backing.subarray(13));
    expect(r.status).toBe(SyncStatus.OK);
    expect(r.entries).toEqual(GOLDEN_1_ENTRIES);
  });

  it("the encoder clears HASHED, as the kernel's sender", () => {
    const b = one([{ ...PLAIN, flags: PLAIN.flags | IP_VS_CONN_F_HASHED }]);
    expect(parseSyncMessage(b).entries[0]!.flags).toBe(PLAIN.flags);
  });

  it("an empty message (nr_conns 0) is valid; no entries encode to no messages", () => {
    expect(parseSyncMessage(hex("00 05 0008 00 01 0000"))).toEqual({
      status: SyncStatus.OK,
      syncid: 5,
      entries: [],
      skipped: [],
    });
    expect(encodeSyncMessage(1, [])).toEqual([]);
  });
});

describe("kernel numbering", () => {
  it("IP_VS_TCP_S_* are TcpState's numbers", () => {
    // include/net/ip_vs.h, enum { IP_VS_TCP_S_NONE = 0, ... IP_VS_TCP_S_LAST }
    const kernel = [
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
    expect(IP_VS_TCP_S_LAST).toBe(kernel.length);
    kernel.forEach((name, n) => {
      expect(TcpState[name as keyof typeof TcpState]).toBe(n);
      expect(TCP_STATE_NAMES[n]).toBe(name);
    });
  });

  it("forwarding methods map both ways", () => {
    for (const fwd of Object.values(FwdMethod)) expect(fwdFromKernel(fwdToKernel(fwd))).toBe(fwd);
    expect(fwdToKernel(FwdMethod.ROUTE)).toBe(3);
    expect(fwdToKernel(FwdMethod.LOCAL)).toBe(1);
    expect(fwdToKernel(FwdMethod.FULLNAT)).toBe(5);
    expect(fwdFromKernel(4)).toBe(-1); // BYPASS
    expect(fwdFromKernel(IP_VS_CONN_F_TEMPLATE | 2)).toBe(FwdMethod.TUNNEL);
  });

  it("table flags map both ways", () => {
    const t = CONN_F_TEMPLATE | CONN_F_INACTIVE | CONN_F_NOOUTPUT | CONN_F_ONE_PACKET;
    const k = connFlagsToKernel(t | 0x01 | 0x10 | 0x20 | 0x40, FwdMethod.TUNNEL);
    expect(k).toBe(
      IP_VS_CONN_F_TEMPLATE | IP_VS_CONN_F_INACTIVE | IP_VS_CONN_F_NOOUTPUT | IP_VS_CONN_F_ONE_PACKET | 2,
    );
    expect(connFlagsFromKernel(k)).toBe(t);
    expect(connFlagsToKernel(0, FwdMethod.MASQ)).toBe(0);
  });

  it("status names are unique and counted", () => {
    expect(SYNC_STATUS_NAMES).toHaveLength(SYNC_STATUS_COUNT);
    expect(new Set(SYNC_STATUS_NAMES).size).toBe(SYNC_STATUS_COUNT);
    expect(Object.keys(SyncStatus)).toHaveLength(SYNC_STATUS_COUNT);
  });
});

describe("refusals", () => {
  /** Entry 1 of a one-entry PLAIN message starts at 8; its options at 44. */
  function plainWith(tail: number[], entryEdit?: (b: Uint8Array) => void): Uint8Array {
    const base = one([PLAIN]);
    const b = new Uint8Array(base.length + tail.length);
    b.set(base);
    b.set(tail, base.length);
    const size = 36 + tail.length;
    b[10] = size >> 8;
    b[11] = size & 0xff;
    entryEdit?.(b);
    return fixSize(b);
  }

  const cases: [string, Uint8Array, SyncStatus][] = [
    ["3 bytes", hex("00 01 00"), SyncStatus.SHORT],
    ["v1 header cut to 6", hex("00 01 0006 00 01"), SyncStatus.SHORT],
    ["size ≠ length", hex("00 01 000a 00 01 0000 00"), SyncStatus.SIZE_MISMATCH],
    ["v0 message", fixSize(hex("01 01 0000 00000000")), SyncStatus.V0_NOT_SUPPORTED],
    ["version 2", hex("00 01 0008 00 02 0000"), SyncStatus.BAD_VERSION],
    ["spare ≠ 0", hex("00 01 0008 00 01 0001"), SyncStatus.BAD_VERSION],
    ["no room for the entry", fixSize(hex("00 01 0000 01 01 0000 00 06 0024")), SyncStatus.TRUNCATED],
    ["entry size beyond the message", plainWith([], (b) => (b[11] = 40)), SyncStatus.TRUNCATED],
    ["entry version 1", plainWith([], (b) => (b[10] = 0x10)), SyncStatus.BAD_ENTRY_VERSION],
    ["entry type 2", plainWith([], (b) => (b[8] = 2)), SyncStatus.BAD_ENTRY_TYPE],
    ["entry size 20", plainWith([], (b) => (b[11] = 20)), SyncStatus.BAD_ENTRY_SIZE],
    ["one option byte", plainWith([0x01]), SyncStatus.OPTION_OVERRUN],
    ["option data past the entry", plainWith([0x02, 0x05, 1, 2]), SyncStatus.OPTION_OVERRUN],
    ["option length 0", plainWith([0x02, 0x00]), SyncStatus.BAD_OPTION_LENGTH],
    ["seq option of 12", plainWith([0x01, 12, ...new Array(12).fill(0)]), SyncStatus.BAD_SEQ_OPTION],
    [
      "seq option twice",
      plainWith([0x01, 24, ...new Array(24).fill(0), 0x01, 24, ...new Array(24).fill(0)]),
      SyncStatus.BAD_SEQ_OPTION,
    ],
    ["PE data twice", plainWith([0x02, 1, 9, 0x02, 1, 9]), SyncStatus.BAD_PE_DATA],
    ["PE name of 17", plainWith([0x03, 17, ...new Array(17).fill(0x61)]), SyncStatus.BAD_PE_NAME],
    ["FULLNAT option of 8", plainWith([0x81, 8, ...new Array(8).fill(0)]), SyncStatus.BAD_FULLNAT_OPTION],
    ["bytes after the last entry", fixSize(Uint8Array.from([...one([PLAIN]), 0])), SyncStatus.TRAILING_BYTES],
  ];
  it.each(cases)("%s", (_name, bytes, status) => {
    const r = parseSyncMessage(bytes);
    expect(SYNC_STATUS_NAMES[r.status]).toBe(SYNC_STATUS_NAMES[status]);
  });

  it("syncid filter (0 takes every syncid)", () => {
    expect(parseSyncMessage(GOLDEN_1, 7).status).toBe(SyncStatus.OK);
    expect(parseSyncMessage(GOLDEN_1, 0).status).toBe(SyncStatus.OK);
    expect(parseSyncMessage(GOLDEN_1, 8).status).toBe(SyncStatus.SYNCID_MISMATCH);
  });

  it("a fatal entry keeps the entries before it (the kernel has applied them)", () => {
    const b = Uint8Array.from(one([PLAIN, { ...PLAIN, cport: 2 }]));
    b[46]! |= 0x10; // second entry (at 44): ver_size version 1
    const r = parseSyncMessage(b);
    expect(r.status).toBe(SyncStatus.BAD_ENTRY_VERSION);
    expect(r.entries).toEqual([PLAIN]);
  });
});

describe("entries skipped, the message goes on (the kernel's positive return codes)", () => {
  const second = { ...PLAIN, cport: 4321 };
  function twoWithFirst(first: number[], firstSize: number): Uint8Array {
    const tail = one([second]).subarray(SYNC_MESG_HLEN);
    const pad = (4 - ((SYNC_MESG_HLEN + first.length) & 3)) & 3;
    const b = new Uint8Array(SYNC_MESG_HLEN + first.length + pad + tail.length);
    b.set([0, 1, 0, 0, 2, 1, 0, 0]);
    b.set(first, SYNC_MESG_HLEN);
    b[SYNC_MESG_HLEN + 2] = firstSize >> 8;
    b[SYNC_MESG_HLEN + 3] = firstSize & 0xff;
    b.set(tail, SYNC_MESG_HLEN + first.length + pad);
    return fixSize(b);
  }
  const plainBody = [...one([PLAIN]).subarray(SYNC_MESG_HLEN)];

  it("an IPv6 entry (72 bytes) is stepped over", () => {
    const v6 = new Array(72).fill(0);
    v6[0] = 1;
    v6[1] = 6;
    const r = parseSyncMessage(twoWithFirst(v6, 72));
    expect(r.status).toBe(SyncStatus.OK);
    expect(r.skipped).toEqual([SyncStatus.ENTRY_IPV6]);
    expect(r.entries).toEqual([second]);
  });

  it("an IPv6 entry shorter than its struct is fatal", () => {
    const v6 = new Array(40).fill(0);
    v6[0] = 1;
    expect(parseSyncMessage(twoWithFirst(v6, 40)).status).toBe(SyncStatus.BAD_ENTRY_SIZE);
  });

  it("an unknown mandatory option skips the entry, without reading the options after it", () => {
    const r = parseSyncMessage(twoWithFirst([...plainBody, 0x09, 1, 0, 0x02, 0x00], 36 + 5));
    expect(r.status).toBe(SyncStatus.OK);
    expect(r.skipped).toEqual([SyncStatus.ENTRY_UNKNOWN_OPTION]);
    expect(r.entries).toEqual([second]);
  });

  it("an unknown optional option (0x40) is ignored; 0x41 is SEQ_DATA (the kernel masks 0x40)", () => {
    const r = parseSyncMessage(twoWithFirst([...plainBody, 0x49, 2, 7, 7], 40));
    expect(r.status).toBe(SyncStatus.OK);
    expect(r.skipped).toEqual([]);
    expect(r.entries).toEqual([PLAIN, second]);
    const seq = [0x41, 24, ...new Array(24).fill(0)];
    const body = [...plainBody];
    body[7] = 0x00;
    body[6] = 0x06; // flags |= SEQ_MASK
    const r2 = parseSyncMessage(twoWithFirst([...body, ...seq], 62));
    expect(r2.status).toBe(SyncStatus.OK);
    expect(r2.entries[0]!.seq).toEqual({
      in: { initSeq: 0, delta: 0, previousDelta: 0 },
      out: { initSeq: 0, delta: 0, previousDelta: 0 },
    });
  });

  it("protocol, state and PE checks skip the entry", () => {
    const sctp = [...plainBody];
    sctp[1] = 132;
    expect(parseSyncMessage(twoWithFirst(sctp, 36)).skipped).toEqual([SyncStatus.ENTRY_BAD_PROTOCOL]);
    const badTcp = [...plainBody];
    badTcp[9] = 11;
    expect(parseSyncMessage(twoWithFirst(badTcp, 36)).skipped).toEqual([SyncStatus.ENTRY_BAD_STATE]);
    const badUdp = [...plainBody];
    badUdp[1] = 17;
    badUdp[9] = 1;
    expect(parseSyncMessage(twoWithFirst(badUdp, 36)).skipped).toEqual([SyncStatus.ENTRY_BAD_STATE]);
    const tpl = [...badTcp];
    tpl[6] = 0x10; // TEMPLATE: the state is not checked (the kernel only logs it)
    expect(parseSyncMessage(twoWithFirst(tpl, 36)).skipped).toEqual([]);
    const r = parseSyncMessage(twoWithFirst([...plainBody, 0x02, 1, 9], 39));
    expect(r.skipped).toEqual([SyncStatus.ENTRY_BAD_PE]);
    expect(r.entries).toEqual([second]);
  });
});

describe("encoder refusals", () => {
  it.each([
    ["port out of range", { ...PLAIN, cport: 65536 }],
    ["SEQ flags without the option", { ...PLAIN, flags: IP_VS_CONN_F_IN_SEQ }],
    [
      "seq option without the flags",
      {
        ...PLAIN,
        seq: {
          in: { initSeq: 0, delta: 0, previousDelta: 0 },
          out: { initSeq: 0, delta: 0, previousDelta: 0 },
        },
      },
    ],
    ["PE data without a name", { ...PLAIN, peData: new Uint8Array([1]) }],
    ["PE name of 17", { ...PLAIN, peData: new Uint8Array([1]), peName: "a".repeat(17) }],
    ["empty PE data", { ...PLAIN, peData: new Uint8Array(0), peName: "sip" }],
    ["negative timeout", { ...PLAIN, timeout: -1 }],
  ] as [string, SyncConn][])("%s", (_n, c) => {
    expect(() => encodeSyncMessage(1, [c])).toThrow(SyncWireError);
  });

  it("refuses a maxlen no entry fits in, and an entry larger than maxlen", () => {
    expect(() => encodeSyncMessage(1, [PLAIN], 43)).toThrow(SyncWireError);
    expect(encodeSyncMessage(1, [PLAIN], 44)).toHaveLength(1);
    expect(() => encodeSyncMessage(1, [GOLDEN_2_ENTRY], 61)).toThrow(/does not fit/);
    expect(() => encodeSyncMessage(256, [PLAIN])).toThrow(SyncWireError);
  });
});

// ------------------------------------------------------------------------------ properties

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const seqArb = fc.record({ initSeq: u32, delta: u32, previousDelta: u32 });

const connArb: fc.Arbitrary<SyncConn> = fc
  .record({
    fwd: fc.constantFrom(...Object.values(FwdMethod)),
    template: fc.boolean(),
    proto: fc.constantFrom(6, 17),
    tplProto: fc.constantFrom(0, 6, 17, 132),
    tcpState: fc.integer({ min: 0, max: IP_VS_TCP_S_LAST - 1 }),
    tplState: fc.integer({ min: 0, max: 1 }),
    extra: fc.subarray([
      IP_VS_CONN_F_INACTIVE,
      IP_VS_CONN_F_NOOUTPUT,
      IP_VS_CONN_F_NO_CPORT,
      IP_VS_CONN_F_ONE_PACKET,
      1 << 16,
    ]),
    seqFlags: fc.constantFrom(0, IP_VS_CONN_F_IN_SEQ, IP_VS_CONN_F_OUT_SEQ, IP_VS_CONN_F_SEQ_MASK),
    seqIn: seqArb,
    seqOut: seqArb,
    pe: fc.option(
      fc.record({
        data: fc.uint8Array({ minLength: 1, maxLength: 255 }),
        name: fc.stringMatching(/^[a-z]{1,16}$/),
      }),
    ),
    fullnat: fc.option(fc.record({ laddr: u32, lport: u16, proxyIsn: u32, proxyDelta: u32 })),
    cport: u16,
    vport: u16,
    dport: u16,
    fwmark: u32,
    timeout: u32,
    caddr: u32,
    vaddr: u32,
    daddr: u32,
  })
  .map((r) => {
    let flags = fwdToKernel(r.fwd) | r.seqFlags;
    for (const f of r.extra) flags |= f;
    if (r.template) flags |= IP_VS_CONN_F_TEMPLATE;
    const protocol = r.template ? r.tplProto : r.proto;
    const state = r.template ? r.tplState : protocol === 6 ? r.tcpState : 0;
    const c: SyncConn = {
      protocol,
      flags,
      state,
      cport: r.template ? 0 : r.cport,
      vport: r.vport,
      dport: r.dport,
      fwmark: r.fwmark,
      timeout: r.timeout,
      caddr: r.caddr,
      vaddr: r.vaddr,
      daddr: r.daddr,
    };
    if (r.seqFlags) c.seq = { in: r.seqIn, out: r.seqOut };
    if (r.pe) {
      c.peData = r.pe.data;
      c.peName = r.pe.name;
    }
    if (r.fullnat && r.fwd === FwdMethod.FULLNAT) c.fullnat = r.fullnat;
    return c;
  });

function parseAll(msgs: Buffer[], syncid: number): SyncConn[] {
  const out: SyncConn[] = [];
  for (const m of msgs) {
    const r = parseSyncMessage(m);
    expect(SYNC_STATUS_NAMES[r.status]).toBe("ok");
    expect(r.syncid).toBe(syncid);
    expect(r.skipped).toEqual([]);
    out.push(...r.entries);
  }
  return out;
}

describe("properties", () => {
  it("encode → parse gives the entries back", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.array(connArb, { maxLength: 20 }), (syncid, conns) => {
        expect(parseAll(encodeSyncMessage(syncid, conns, 65535), syncid)).toEqual(conns);
      }),
      { numRuns: 300 },
    );
  });

  it("splitting by maxlen: no message larger, entries in order, greedy as the kernel's buffer", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 400, max: 3000 }),
        fc.array(connArb, { maxLength: 80 }),
        (maxlen, conns) => {
          const msgs = encodeSyncMessage(3, conns, maxlen);
          for (const m of msgs) {
            expect(m.length).toBeLessThanOrEqual(maxlen);
            expect(m[4]).toBeGreaterThan(0);
          }
          expect(parseAll(msgs, 3)).toEqual(conns);
          // Each message but the last was closed because the next entry did not fit.
          let k = 0;
          for (let i = 0; i + 1 < msgs.length; i++) {
            k += msgs[i]![4]!;
            const pad = (4 - msgs[i]!.length) & 3;
            expect(msgs[i]!.length + pad + syncEntryLen(conns[k]!)).toBeGreaterThan(maxlen);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it("at most 255 entries a message", () => {
    const conns = Array.from({ length: 600 }, (_, i) => ({ ...PLAIN, cport: i }));
    const msgs = encodeSyncMessage(1, conns, 65535);
    expect(msgs.map((m) => m[4])).toEqual([SYNC_MAX_CONNS, SYNC_MAX_CONNS, 90]);
    expect(parseAll(msgs, 1)).toEqual(conns);
  });

  function statusOk(r: ReturnType<typeof parseSyncMessage>): void {
    expect(r.status).toBeGreaterThanOrEqual(0);
    expect(r.status).toBeLessThan(SyncStatus.ENTRY_IPV6);
    for (const s of r.skipped) expect(s).toBeGreaterThanOrEqual(SyncStatus.ENTRY_IPV6);
  }

  it("random bytes never throw", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (b) => statusOk(parseSyncMessage(b))),
      { numRuns: 2000 },
    );
    // Behind a valid v1 header with the right size, to reach the entry and option checks.
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 600 }), (n, body) => {
        const b = new Uint8Array(8 + body.length);
        b.set([0, 1, 0, 0, n, 1, 0, 0]);
        b.set(body, 8);
        statusOk(parseSyncMessage(fixSize(b)));
      }),
      { numRuns: 2000 },
    );
  });

  it("mutated messages never throw", () => {
    fc.assert(
      fc.property(
        fc.array(connArb, { minLength: 1, maxLength: 6 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: -8, max: 8 }),
        fc.boolean(),
        (conns, edits, resize, keepSize) => {
          const m = encodeSyncMessage(1, conns, 65535)[0]!;
          const len = Math.max(0, m.length + resize);
          const b = new Uint8Array(len);
          b.set(m.subarray(0, Math.min(len, m.length)));
          for (const [at, v] of edits) if (len > 0) b[at % len] = v;
          if (keepSize && len >= 4) fixSize(b);
          statusOk(parseSyncMessage(b));
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe("the SYN-proxy offset in the kernel's SEQ option", () => {
  // The kernel's use of `struct ip_vs_seq` (net/netfilter/ipvs/ip_vs_app.c), modelled here from
  // its documented behaviour: with IP_VS_CONN_F_OUT_SEQ, a server->client segment's seq gets
  // out_seq.delta added when it is after init_seq, previous_delta otherwise (vs_fix_seq); a
  // client->server segment's ack loses delta when after init_seq + delta, previous_delta
  // otherwise (vs_fix_ack_seq). `seqAfter` is the kernel's wrap-around comparison.
  const seqAfter = (a: number, b: number) => ((b - a) | 0) < 0;
  const fixSeq = (s: { initSeq: number; delta: number; previousDelta: number }, seq: number) =>
    s.delta === 0 && s.previousDelta === 0
      ? seq
      : (seq + (seqAfter(seq, s.initSeq) ? s.delta : s.previousDelta)) >>> 0;
  const fixAck = (s: { initSeq: number; delta: number; previousDelta: number }, ack: number) =>
    s.delta === 0 && s.previousDelta === 0
      ? ack
      : (ack - (seqAfter(ack, (s.initSeq + s.delta) >>> 0) ? s.delta : s.previousDelta)) >>> 0;
  const u32 = fc.integer({ min: 0, max: 0xffffffff });

  const entry = (cookie: number, seqDelta: number, fullnat: boolean): SyncConn => ({
    protocol: 6, // TCP
    flags: (fullnat ? IP_VS_CONN_F_FULLNAT : 0) | IP_VS_CONN_F_OUT_SEQ,
    state: TcpState.ESTABLISHED,
    cport: 40000,
    vport: 80,
    dport: 8080,
    fwmark: 0,
    timeout: 900,
    caddr: 0x0a000007,
    vaddr: 0x0a000064,
    daddr: 0xc0a80a01,
    seq: synProxySeq(cookie, seqDelta),
    ...(fullnat ? { fullnat: { laddr: 0xc0a80ac8, lport: 5000, proxyIsn: 0, proxyDelta: 0 } } : {}),
  });

  it("the option's bytes: in_seq zero, out_seq {server ISN, cookie - server ISN twice}, OUT_SEQ set", () => {
    const cookie = 0x11223344;
    const srvIsn = 0x00000010; // below the cookie: the delta wraps
    const [m] = encodeSyncMessage(0, [entry(cookie, (srvIsn - cookie) >>> 0, false)]);
    const b = m!;
    expect(b.readUInt32BE(8 + 4) & IP_VS_CONN_F_SEQ_MASK).toBe(IP_VS_CONN_F_OUT_SEQ);
    expect(b.readUInt16BE(8 + 2)).toBe(36 + 2 + 24);
    expect([b[8 + 36], b[8 + 37]]).toEqual([1, 24]); // IPVS_OPT_SEQ_DATA, sizeof(ip_vs_sync_conn_options)
    const o = 8 + 38;
    expect([b.readUInt32BE(o), b.readUInt32BE(o + 4), b.readUInt32BE(o + 8)]).toEqual([0, 0, 0]);
    expect([b.readUInt32BE(o + 12), b.readUInt32BE(o + 16), b.readUInt32BE(o + 20)]).toEqual([
      srvIsn,
      (cookie - srvIsn) >>> 0,
      (cookie - srvIsn) >>> 0,
    ]);
  });

  it("round trip through the codec, NAT and FULLNAT (property)", () => {
    fc.assert(
      fc.property(u32, u32, fc.boolean(), (cookie, seqDelta, fullnat) => {
        const [m, ...rest] = encodeSyncMessage(3, [entry(cookie, seqDelta, fullnat)]);
        expect(rest).toHaveLength(0);
        const r = parseSyncMessage(m!, 3);
        expect(r.status).toBe(SyncStatus.OK);
        expect(synProxyFromSeq(r.entries[0]!.flags, r.entries[0]!.seq)).toEqual({ cookie, seqDelta });
      }),
      { numRuns: 500 },
    );
  });

  it("a kernel receiver applying the option shifts exactly as the engine does, both ways (property)", () => {
    fc.assert(
      fc.property(u32, u32, u32, u32, (cookie, srvIsn, off, ack) => {
        const seqDelta = (srvIsn - cookie) >>> 0;
        const { out } = synProxySeq(cookie, seqDelta);
        // server -> client: the engine moves seq down by seqDelta
        const serverSeq = (srvIsn + off) >>> 0;
        expect(fixSeq(out, serverSeq)).toBe((serverSeq - seqDelta) >>> 0);
        // client -> server: the engine moves ack up by seqDelta
        expect(fixAck(out, ack)).toBe((ack + seqDelta) >>> 0);
      }),
      { numRuns: 2000 },
    );
  });

  it("what is not one uniform shift is not taken; an entry without the option still parses", () => {
    const s = synProxySeq(5, 7);
    expect(synProxyFromSeq(0, s)).toBeUndefined(); // no OUT_SEQ flag
    expect(synProxyFromSeq(IP_VS_CONN_F_OUT_SEQ, undefined)).toBeUndefined();
    const ftp = { in: s.in, out: { ...s.out, previousDelta: 0 } }; // a resize history
    expect(synProxyFromSeq(IP_VS_CONN_F_OUT_SEQ, ftp)).toBeUndefined();
    const inShift = { in: { initSeq: 1, delta: 3, previousDelta: 0 }, out: s.out };
    expect(synProxyFromSeq(IP_VS_CONN_F_SEQ_MASK, inShift)).toBeUndefined();
    // IN_SEQ with a zero in_seq changes nothing (the kernel's vs_fix_* skip it)
    expect(synProxyFromSeq(IP_VS_CONN_F_SEQ_MASK, s)).toEqual({ cookie: 5, seqDelta: 7 });
    const plain: SyncConn = { ...entry(1, 2, false), flags: 0 };
    delete plain.seq;
    const r = parseSyncMessage(encodeSyncMessage(0, [plain])[0]!);
    expect(r.status).toBe(SyncStatus.OK);
    expect(r.entries[0]!.seq).toBeUndefined();
    expect(synProxyFromSeq(r.entries[0]!.flags, r.entries[0]!.seq)).toBeUndefined();
  });
});
