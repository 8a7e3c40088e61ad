/**
 * The kernel's IPVS connection-sync message, version 1 (net/netfilter/ipvs/ip_vs_sync.c), IPv4
 * entries: `encodeSyncMessage` packs connections into UDP payloads as the kernel's master sync
 * buffer does; `parseSyncMessage` checks and decodes one payload as the kernel's backup does
 * (`ip_vs_process_message`, `ip_vs_proc_sync_conn`), returning a status, never throwing.
 * Control plane: both allocate per message. Not wired into lvsd yet (docs/ha.md).
 *
 * Byte order: every multi-byte field is big-endian (network order), the seq option included
 * ("In ver.1 ip_vs_sync_conn_options will be sent in netw. order").
 *
 * Message header, 8 bytes — `struct ip_vs_sync_mesg`:
 *
 *   __u8   reserved;   must be zero (it is v0's nr_conns: a v0 receiver drops the message)
 *   __u8   syncid;
 *   __be16 size;       whole message, header included; must equal the datagram length
 *   __u8   nr_conns;
 *   __s8   version;    SYNC_PROTO_VER = 1
 *   __u16  spare;      zero
 *
 * Then nr_conns entries. IPv4 entry, 36 bytes — `struct ip_vs_sync_v4`:
 *
 *   __u8   type;       0 (bit 0, STYPE_F_INET6, marks the 72-byte `ip_vs_sync_v6`)
 *   __u8   protocol;   IPPROTO_TCP/UDP/...
 *   __be16 ver_size;   version (top 4 bits, SVER_SHIFT 12: 0) | entry size incl. options (12 bits)
 *   __be32 flags;      IP_VS_CONN_F_* (the sender clears HASHED)
 *   __be16 state;      IP_VS_TCP_S_* (or a template's IP_VS_CTPL_S_*)
 *   __be16 cport, vport, dport;
 *   __be32 fwmark;
 *   __be32 timeout;    seconds (cp->timeout / HZ)
 *   __be32 caddr, vaddr, daddr;
 *
 * followed by options, each `__u8 type, __u8 length (of the data, never 0), data`:
 *
 *   IPVS_OPT_SEQ_DATA (1), 24 bytes, sent iff flags & IP_VS_CONN_F_SEQ_MASK:
 *     `struct ip_vs_sync_conn_options { struct ip_vs_seq in_seq, out_seq; }`, each
 *     `struct ip_vs_seq { __u32 init_seq, delta, previous_delta; }` (include/net/ip_vs.h)
 *   IPVS_OPT_PE_DATA (2), 1..255 bytes (IP_VS_PEDATA_MAXLEN): persistence-engine data
 *   IPVS_OPT_PE_NAME (3), 1..16 bytes (IP_VS_PENAME_MAXLEN): the engine's name ("sip")
 *   IPVS_OPT_F_PARAM (0x40) in a type marks the option as optional: a receiver that does not
 *   know it skips it; an unknown type without that bit is mandatory (see below).
 *
 * Padding: the entry size excludes padding; the next entry starts at the next multiple of 4
 * (the sender zero-fills the gap, `pad = (4 - head) & 3`; the receiver steps `(size + 3) & ~3`).
 * The last entry is not padded: the message size ends with it.
 *
 * What a kernel backup does with an entry (`ip_vs_proc_sync_conn`): a negative result drops
 * the rest of the message (bad type bits, size below the struct, option overrun, zero option
 * length, a duplicate or wrongly sized SEQ/PE option); a positive one skips just that entry
 * (an unknown *mandatory* option — "Unknown mandatory param" —, an unsupported protocol, a state
 * beyond the protocol's table, PE data without a known engine). Entries before a fatal error
 * have already been applied. Bytes after the last entry are not looked at.
 *
 * lvs-ts extension, IPVS_OPT_LVSTS_FULLNAT (0x81), 16 bytes, mandatory (0x40 clear), so a kernel
 * backup *skips that entry* and keeps processing the rest of the message: it never creates a
 * FULLNAT connection it could not forward (mainline has no FULLNAT; 5 in the fwd bits is the
 * value the Alibaba FULLNAT kernel and DPVS use). FULLNAT entries therefore share messages with
 * the others. Layout:
 *
 *   __be32 laddr;       FULLNAT local (source) address towards the real server
 *   __be16 lport;       FULLNAT local port
 *   __be16 reserved;    sent 0, ignored on receipt
 *   __be32 proxy_isn;   PROXY protocol: the client's first data sequence number (0: none)
 *   __be32 proxy_delta; PROXY protocol: bytes inserted into the client's stream
 *
 * SYN proxy (lvs-ts, src/datapath/synproxy.ts): a SYN-proxied connection's sequence offset goes
 * in the kernel's own SEQ option, as the kernel's NAT helpers would describe a shift of the
 * server's sequence space (ip_vs_app.c: with IP_VS_CONN_F_OUT_SEQ, vs_fix_seq adds out_seq.delta
 * to server→client seq numbers after out_seq.init_seq, previous_delta to those before, and
 * vs_fix_ack_seq subtracts the same from client→server acks). `synProxySeq` and
 * `synProxyFromSeq` map between that and the engine's (cookie, seqDelta = server ISN − cookie).
 *
 * lvs-ts is IPv4 only: IPv6 entries are stepped over and reported in `skipped`.
 */

import {
  IP_VS_CONN_F_HASHED,
  IP_VS_CONN_F_IN_SEQ,
  IP_VS_CONN_F_OUT_SEQ,
  IP_VS_CONN_F_SEQ_MASK,
  IP_VS_CONN_F_TEMPLATE,
  IP_VS_PEDATA_MAXLEN,
  IP_VS_PENAME_MAXLEN,
  IP_VS_TCP_S_LAST,
  IP_VS_UDP_S_LAST,
  IPVS_OPT_F_PARAM,
  IPVS_OPT_LVSTS_FULLNAT,
  IPVS_OPT_PE_DATA,
  IPVS_OPT_PE_NAME,
  IPVS_OPT_SEQ_DATA,
  STYPE_F_INET6,
  SVER_MASK,
  SVER_SHIFT,
  SYNC_DEFAULT_MAXLEN,
  SYNC_FULLNAT_OPT_LEN,
  SYNC_MAX_CONNS,
  SYNC_MESG_HLEN,
  SYNC_PROTO_VER,
  SYNC_SEQ_OPT_LEN,
  SYNC_V0_MESG_HLEN,
  SYNC_V4_LEN,
  SYNC_V6_LEN,
} from "../../datapath/packet/ipvs-sync.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../lib/proto.js";

export * from "../../datapath/packet/ipvs-sync.js";

/** `struct ip_vs_seq` (host numbers, unsigned 32-bit). */
export interface SyncSeq {
  initSeq: number;
  delta: number;
  previousDelta: number;
}

/** The lvs-ts FULLNAT option. */
export interface SyncFullnat {
  laddr: number;
  lport: number;
  proxyIsn: number;
  proxyDelta: number;
}

/** One IPv4 entry. Addresses are uint32 numbers (host order), as elsewhere in lvs-ts. */
export interface SyncConn {
  protocol: number;
  /** IP_VS_CONN_F_* as on the wire (u32). HASHED is cleared on encode. */
  flags: number;
  state: number;
  cport: number;
  vport: number;
  dport: number;
  fwmark: number;
  /** Seconds. */
  timeout: number;
  caddr: number;
  vaddr: number;
  daddr: number;
  /** IPVS_OPT_SEQ_DATA; present iff flags & IP_VS_CONN_F_SEQ_MASK. */
  seq?: { in: SyncSeq; out: SyncSeq };
  /** IPVS_OPT_PE_DATA (1..255 bytes); with `peName`. */
  peData?: Uint8Array;
  /** IPVS_OPT_PE_NAME (ASCII, 1..16 characters); with `peData`. */
  peName?: string;
  /** IPVS_OPT_LVSTS_FULLNAT. */
  fullnat?: SyncFullnat;
}

/**
 * Why a message (or, from ENTRY_IPV6 on, one entry) was not taken. Up to TRAILING_BYTES the
 * whole rest of the message is refused (entries decoded before the fault are returned, as the
 * kernel has applied them by then); the ENTRY_* reasons skip one entry and go on, as the
 * kernel's positive return codes do. `SYNC_STATUS_NAMES` gives each a counter name.
 */
export const SyncStatus = {
  OK: 0,
  /** Fewer bytes than a header (4, or 8 for a version 1 header). */
  SHORT: 1,
  /** The header's size is not the datagram's length ("bogus message size"). */
  SIZE_MISMATCH: 2,
  /** A syncid other than the one asked for (the kernel's backup filter, when set). */
  SYNCID_MISMATCH: 3,
  /** A version 0 message (first byte, v0's nr_conns, not zero): recognised, not decoded. */
  V0_NOT_SUPPORTED: 4,
  /** First byte zero but version not 1 or spare not zero (the kernel would read it as v0). */
  BAD_VERSION: 5,
  /** An entry header or its size runs past the message ("too small", "msg > buffer"). */
  TRUNCATED: 6,
  /** An entry's ver_size carries a version other than 0. */
  BAD_ENTRY_VERSION: 7,
  /** An entry's type has bits other than STYPE_F_INET6 (kernel -10). */
  BAD_ENTRY_TYPE: 8,
  /** An entry's size is below its struct (kernel -20). */
  BAD_ENTRY_SIZE: 9,
  /** An option header or its data runs past the entry (kernel -30, -40). */
  OPTION_OVERRUN: 10,
  /** An option of length 0 (kernel -40). */
  BAD_OPTION_LENGTH: 11,
  /** SEQ_DATA not 24 bytes, or twice (kernel -50). */
  BAD_SEQ_OPTION: 12,
  /** PE_DATA twice (kernel -60). */
  BAD_PE_DATA: 13,
  /** PE_NAME over 16 bytes, or twice (kernel -70). */
  BAD_PE_NAME: 14,
  /** The lvs-ts FULLNAT option not 16 bytes, or twice. */
  BAD_FULLNAT_OPTION: 15,
  /** Bytes after the last entry (the kernel ignores them; neither it nor lvs-ts sends any). */
  TRAILING_BYTES: 16,
  /** An IPv6 entry: stepped over (lvs-ts is IPv4 only). */
  ENTRY_IPV6: 17,
  /** An unknown mandatory option (kernel retc 20): the entry is skipped. */
  ENTRY_UNKNOWN_OPTION: 18,
  /** A connection (not a template) of a protocol other than TCP or UDP (kernel retc 30). */
  ENTRY_BAD_PROTOCOL: 19,
  /** A connection state beyond its protocol's table (kernel retc 40). */
  ENTRY_BAD_STATE: 20,
  /** PE data without a PE name (kernel retc 50). */
  ENTRY_BAD_PE: 21,
} as const;
export type SyncStatus = (typeof SyncStatus)[keyof typeof SyncStatus];
export const SYNC_STATUS_COUNT = 22;

export const SYNC_STATUS_NAMES: readonly string[] = [
  "ok",
  "sync_short",
  "sync_size_mismatch",
  "sync_syncid_mismatch",
  "sync_v0_not_supported",
  "sync_bad_version",
  "sync_truncated",
  "sync_bad_entry_version",
  "sync_bad_entry_type",
  "sync_bad_entry_size",
  "sync_option_overrun",
  "sync_bad_option_length",
  "sync_bad_seq_option",
  "sync_bad_pe_data",
  "sync_bad_pe_name",
  "sync_bad_fullnat_option",
  "sync_trailing_bytes",
  "sync_entry_ipv6",
  "sync_entry_unknown_option",
  "sync_entry_bad_protocol",
  "sync_entry_bad_state",
  "sync_entry_bad_pe",
];

export interface SyncParseResult {
  status: SyncStatus;
  /** The header's syncid (0 when the message is too short to have one). */
  syncid: number;
  /** Entries decoded, in order (up to the fault when status is not OK). */
  entries: SyncConn[];
  /** One ENTRY_* reason per entry stepped over, in order. */
  skipped: SyncStatus[];
}

/** An entry or a limit the encoder cannot put on the wire. `code` is stable. */
export class SyncWireError extends Error {
  readonly code = "ESYNCWIRE";
  constructor(message: string) {
    super(message);
    this.name = "SyncWireError";
  }
}

/**
 * The SEQ option of a SYN-proxied connection (flag IP_VS_CONN_F_OUT_SEQ): `in_seq` zero, `out_seq`
 * = {init_seq: the server's ISN, delta = previous_delta: cookie − server ISN}. `cookie` is the
 * ISN the director gave the client, `seqDelta` the engine's server ISN − cookie (u32 each).
 */
export function synProxySeq(cookie: number, seqDelta: number): { in: SyncSeq; out: SyncSeq } {
  const d = (0 - seqDelta) >>> 0;
  return {
    in: { initSeq: 0, delta: 0, previousDelta: 0 },
    out: { initSeq: (cookie + seqDelta) >>> 0, delta: d, previousDelta: d },
  };
}

/**
 * The engine's SYN-proxy state from a received entry's flags and SEQ option: the cookie and
 * seqDelta (server ISN − cookie), or undefined when the option is absent or is not one uniform
 * shift of the server's sequence space — IN_SEQ with a non-zero shift, or out_seq's delta and
 * previous_delta different (a kernel's FTP helper after a resize: lvs-ts does not rewrite
 * payloads and so has nothing to apply it to).
 */
export function synProxyFromSeq(
  flags: number,
  seq: { in: SyncSeq; out: SyncSeq } | undefined,
): { cookie: number; seqDelta: number } | undefined {
  if (!seq || (flags & IP_VS_CONN_F_OUT_SEQ) === 0) return undefined;
  if ((flags & IP_VS_CONN_F_IN_SEQ) !== 0 && (seq.in.delta !== 0 || seq.in.previousDelta !== 0))
    return undefined;
  const o = seq.out;
  if (o.delta !== o.previousDelta) return undefined;
  return { cookie: (o.initSeq + o.delta) >>> 0, seqDelta: (0 - o.delta) >>> 0 };
}

function isU(n: number, bits: number): boolean {
  return Number.isInteger(n) && n >= 0 && n < 2 ** bits;
}

function checkSeq(s: SyncSeq, what: string): void {
  if (!isU(s.initSeq, 32) || !isU(s.delta, 32) || !isU(s.previousDelta, 32))
    throw new SyncWireError(`${what}: sequence fields must be unsigned 32-bit integers`);
}

/** Bytes of `c` on the wire, options included, padding excluded; throws for what cannot go. */
export function syncEntryLen(c: SyncConn): number {
  for (const [k, bits] of [
    ["protocol", 8],
    ["flags", 32],
    ["state", 16],
    ["cport", 16],
    ["vport", 16],
    ["dport", 16],
    ["fwmark", 32],
    ["timeout", 32],
    ["caddr", 32],
    ["vaddr", 32],
    ["daddr", 32],
  ] as const) {
    if (!isU(c[k], bits)) throw new SyncWireError(`${k} must be an unsigned ${bits}-bit integer`);
  }
  let len = SYNC_V4_LEN;
  const seqFlag = (c.flags & IP_VS_CONN_F_SEQ_MASK) !== 0;
  if (seqFlag !== (c.seq !== undefined))
    throw new SyncWireError("the seq option goes with the IN_SEQ/OUT_SEQ flags, and only with them");
  if (c.seq) {
    checkSeq(c.seq.in, "seq.in");
    checkSeq(c.seq.out, "seq.out");
    len += 2 + SYNC_SEQ_OPT_LEN;
  }
  if ((c.peData === undefined) !== (c.peName === undefined))
    throw new SyncWireError("peData and peName go together");
  if (c.peData && c.peName !== undefined) {
    if (c.peData.length < 1 || c.peData.length > IP_VS_PEDATA_MAXLEN)
      throw new SyncWireError(`peData must be 1..${IP_VS_PEDATA_MAXLEN} bytes`);
    if (!/^[\x21-\x7e]{1,16}$/.test(c.peName))
      throw new SyncWireError(`peName must be 1..${IP_VS_PENAME_MAXLEN} printable ASCII characters`);
    len += 2 + c.peData.length + 2 + c.peName.length;
  }
  if (c.fullnat) {
    const f = c.fullnat;
    if (!isU(f.laddr, 32) || !isU(f.lport, 16) || !isU(f.proxyIsn, 32) || !isU(f.proxyDelta, 32))
      throw new SyncWireError("fullnat fields out of range");
    len += 2 + SYNC_FULLNAT_OPT_LEN;
  }
  return len;
}

function writeSeq(dv: DataView, o: number, s: SyncSeq): number {
  dv.setUint32(o, s.initSeq);
  dv.setUint32(o + 4, s.delta);
  dv.setUint32(o + 8, s.previousDelta);
  return o + 12;
}

/** Writes `c` (of wire length `len`) at `o`; returns the offset after it. */
function writeEntry(buf: Buffer, dv: DataView, o: number, c: SyncConn, len: number): number {
  dv.setUint8(o, 0); // type: IPv4
  dv.setUint8(o + 1, c.protocol);
  dv.setUint16(o + 2, len & SVER_MASK); // version 0
  dv.setUint32(o + 4, (c.flags & ~IP_VS_CONN_F_HASHED) >>> 0);
  dv.setUint16(o + 8, c.state);
  dv.setUint16(o + 10, c.cport);
  dv.setUint16(o + 12, c.vport);
  dv.setUint16(o + 14, c.dport);
  dv.setUint32(o + 16, c.fwmark);
  dv.setUint32(o + 20, c.timeout);
  dv.setUint32(o + 24, c.caddr);
  dv.setUint32(o + 28, c.vaddr);
  dv.setUint32(o + 32, c.daddr);
  let p = o + SYNC_V4_LEN;
  if (c.seq) {
    buf[p++] = IPVS_OPT_SEQ_DATA;
    buf[p++] = SYNC_SEQ_OPT_LEN;
    p = writeSeq(dv, p, c.seq.in);
    p = writeSeq(dv, p, c.seq.out);
  }
  if (c.peData && c.peName !== undefined) {
    buf[p++] = IPVS_OPT_PE_DATA;
    buf[p++] = c.peData.length;
    buf.set(c.peData, p);
    p += c.peData.length;
    buf[p++] = IPVS_OPT_PE_NAME;
    buf[p++] = c.peName.length;
    p += buf.write(c.peName, p, "latin1");
  }
  if (c.fullnat) {
    buf[p++] = IPVS_OPT_LVSTS_FULLNAT;
    buf[p++] = SYNC_FULLNAT_OPT_LEN;
    dv.setUint32(p, c.fullnat.laddr);
    dv.setUint16(p + 4, c.fullnat.lport);
    dv.setUint16(p + 6, 0);
    dv.setUint32(p + 8, c.fullnat.proxyIsn);
    dv.setUint32(p + 12, c.fullnat.proxyDelta);
    p += SYNC_FULLNAT_OPT_LEN;
  }
  return p;
}

/**
 * Packs `entries`, in order, into version 1 messages of at most `maxlen` bytes (the UDP
 * payload; the kernel master's default is 1472), as the kernel's sync buffer fills: an entry
 * goes into the current message if it fits after the padding to 4 bytes and the message holds
 * fewer than 255 entries, else it starts a new one. No entries: no messages. Throws
 * SyncWireError for an entry that cannot be encoded or that does not fit in `maxlen` alone
 * (the kernel would send an oversized buffer for it; we refuse).
 */
export function encodeSyncMessage(
  syncid: number,
  entries: readonly SyncConn[],
  maxlen = SYNC_DEFAULT_MAXLEN,
): Buffer[] {
  if (!isU(syncid, 8)) throw new SyncWireError("syncid must be 0..255");
  if (!Number.isInteger(maxlen) || maxlen < SYNC_MESG_HLEN + SYNC_V4_LEN || maxlen > 0xffff)
    throw new SyncWireError(`maxlen must be ${SYNC_MESG_HLEN + SYNC_V4_LEN}..65535`);
  const lens = entries.map((c) => {
    const len = syncEntryLen(c);
    if (SYNC_MESG_HLEN + len > maxlen)
      throw new SyncWireError(`an entry of ${len} bytes does not fit in a message of ${maxlen}`);
    return len;
  });
  // Group first (sizes only), then write each message into a buffer of its exact size.
  const groups: { from: number; to: number; size: number }[] = [];
  let from = 0;
  let size = SYNC_MESG_HLEN;
  for (let i = 0; i < entries.length; i++) {
    const len = lens[i]!;
    const pad = (4 - size) & 3;
    if (i > from && (size + pad + len > maxlen || i - from >= SYNC_MAX_CONNS)) {
      groups.push({ from, to: i, size });
      from = i;
      size = SYNC_MESG_HLEN + len;
    } else {
      size += (i > from ? pad : 0) + len;
    }
  }
  if (entries.length > from) groups.push({ from, to: entries.length, size });

  const out: Buffer[] = [];
  for (const g of groups) {
    const buf = Buffer.alloc(g.size);
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    buf[0] = 0; // reserved
    buf[1] = syncid;
    dv.setUint16(2, g.size);
    buf[4] = g.to - g.from;
    buf[5] = SYNC_PROTO_VER;
    dv.setUint16(6, 0); // spare
    let o = SYNC_MESG_HLEN;
    for (let i = g.from; i < g.to; i++) {
      o += (4 - o) & 3; // zero padding (Buffer.alloc)
      o = writeEntry(buf, dv, o, entries[i]!, lens[i]!);
    }
    out.push(buf);
  }
  return out;
}

function readSeq(dv: DataView, o: number): SyncSeq {
  return { initSeq: dv.getUint32(o), delta: dv.getUint32(o + 4), previousDelta: dv.getUint32(o + 8) };
}

type EntryResult = SyncConn | SyncStatus;

/** One entry in [p, end): a SyncConn, an ENTRY_* reason to skip it, or a fatal status. */
function parseEntry(buf: Uint8Array, dv: DataView, p: number, end: number): EntryResult {
  const type = buf[p]!;
  let o: number;
  if (type & STYPE_F_INET6) {
    if (p + SYNC_V6_LEN > end) return SyncStatus.BAD_ENTRY_SIZE;
    return SyncStatus.ENTRY_IPV6;
  }
  if (type !== 0) return SyncStatus.BAD_ENTRY_TYPE;
  o = p + SYNC_V4_LEN;
  if (o > end) return SyncStatus.BAD_ENTRY_SIZE;

  let seq: { in: SyncSeq; out: SyncSeq } | undefined;
  let peData: Uint8Array | undefined;
  let peName: string | undefined;
  let fullnat: SyncFullnat | undefined;
  while (o < end) {
    if (o + 2 > end) return SyncStatus.OPTION_OVERRUN;
    const ptype = buf[o]!;
    const plen = buf[o + 1]!;
    o += 2;
    if (plen === 0) return SyncStatus.BAD_OPTION_LENGTH;
    if (o + plen > end) return SyncStatus.OPTION_OVERRUN;
    switch (ptype & ~IPVS_OPT_F_PARAM) {
      case IPVS_OPT_SEQ_DATA:
        if (plen !== SYNC_SEQ_OPT_LEN || seq) return SyncStatus.BAD_SEQ_OPTION;
        seq = { in: readSeq(dv, o), out: readSeq(dv, o + 12) };
        break;
      case IPVS_OPT_PE_DATA:
        if (peData) return SyncStatus.BAD_PE_DATA;
        peData = new Uint8Array(buf.subarray(o, o + plen));
        break;
      case IPVS_OPT_PE_NAME:
        if (plen > IP_VS_PENAME_MAXLEN || peName !== undefined) return SyncStatus.BAD_PE_NAME;
        peName = Buffer.from(buf.buffer, buf.byteOffset + o, plen).toString("latin1");
        break;
      case IPVS_OPT_LVSTS_FULLNAT:
        if (plen !== SYNC_FULLNAT_OPT_LEN || fullnat) return SyncStatus.BAD_FULLNAT_OPTION;
        fullnat = {
          laddr: dv.getUint32(o),
          lport: dv.getUint16(o + 4),
          proxyIsn: dv.getUint32(o + 8),
          proxyDelta: dv.getUint32(o + 12),
        };
        break;
      default:
        // Optional (IPVS_OPT_F_PARAM) options are skipped; an unknown mandatory one drops
        // the entry, without looking at the options after it (as the kernel).
        if (!(ptype & IPVS_OPT_F_PARAM)) return SyncStatus.ENTRY_UNKNOWN_OPTION;
    }
    o += plen;
  }

  const protocol = buf[p + 1]!;
  const flags = dv.getUint32(p + 4);
  const state = dv.getUint16(p + 8);
  if (!(flags & IP_VS_CONN_F_TEMPLATE)) {
    if (protocol === IPPROTO_TCP) {
      if (state >= IP_VS_TCP_S_LAST) return SyncStatus.ENTRY_BAD_STATE;
    } else if (protocol === IPPROTO_UDP) {
      if (state >= IP_VS_UDP_S_LAST) return SyncStatus.ENTRY_BAD_STATE;
    } else {
      return SyncStatus.ENTRY_BAD_PROTOCOL;
    }
  }
  if (peData && peName === undefined) return SyncStatus.ENTRY_BAD_PE;

  const c: SyncConn = {
    protocol,
    flags,
    state,
    cport: dv.getUint16(p + 10),
    vport: dv.getUint16(p + 12),
    dport: dv.getUint16(p + 14),
    fwmark: dv.getUint32(p + 16),
    timeout: dv.getUint32(p + 20),
    caddr: dv.getUint32(p + 24),
    vaddr: dv.getUint32(p + 28),
    daddr: dv.getUint32(p + 32),
  };
  if (seq) c.seq = seq;
  // A PE name without PE data is ignored by the kernel; kept here for the caller to see.
  if (peData) c.peData = peData;
  if (peName !== undefined) c.peName = peName;
  if (fullnat) c.fullnat = fullnat;
  return c;
}

function isEntrySkip(r: EntryResult): r is SyncStatus {
  return typeof r === "number" && r >= SyncStatus.ENTRY_IPV6;
}

/**
 * Checks and decodes one sync message (a UDP payload). `syncid` ≠ 0 refuses messages of other
 * sync ids, as the kernel backup's filter. Never throws.
 */
export function parseSyncMessage(buf: Uint8Array, syncid = 0): SyncParseResult {
  const res: SyncParseResult = { status: SyncStatus.OK, syncid: 0, entries: [], skipped: [] };
  const n = buf.length;
  if (n < SYNC_V0_MESG_HLEN) {
    res.status = SyncStatus.SHORT;
    return res;
  }
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  res.syncid = buf[1]!;
  if (dv.getUint16(2) !== n) {
    res.status = SyncStatus.SIZE_MISMATCH;
    return res;
  }
  if (syncid !== 0 && res.syncid !== syncid) {
    res.status = SyncStatus.SYNCID_MISMATCH;
    return res;
  }
  if (buf[0] !== 0) {
    res.status = SyncStatus.V0_NOT_SUPPORTED;
    return res;
  }
  if (n < SYNC_MESG_HLEN) {
    res.status = SyncStatus.SHORT;
    return res;
  }
  if (buf[5] !== SYNC_PROTO_VER || dv.getUint16(6) !== 0) {
    res.status = SyncStatus.BAD_VERSION;
    return res;
  }
  const nrConns = buf[4]!;
  let next = SYNC_MESG_HLEN;
  let end = SYNC_MESG_HLEN;
  for (let i = 0; i < nrConns; i++) {
    const p = next;
    if (p + SYNC_V4_LEN > n) {
      res.status = SyncStatus.TRUNCATED;
      return res;
    }
    const verSize = dv.getUint16(p + 2);
    const size = verSize & SVER_MASK;
    end = p + size;
    if (end > n) {
      res.status = SyncStatus.TRUNCATED;
      return res;
    }
    if (verSize >>> SVER_SHIFT !== 0) {
      res.status = SyncStatus.BAD_ENTRY_VERSION;
      return res;
    }
    const r = parseEntry(buf, dv, p, end);
    if (typeof r !== "number") res.entries.push(r);
    else if (isEntrySkip(r)) res.skipped.push(r);
    else {
      res.status = r;
      return res;
    }
    next = p + ((size + 3) & ~3);
  }
  if (end !== n) res.status = SyncStatus.TRAILING_BYTES;
  return res;
}
