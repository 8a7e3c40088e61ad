/**
 * Golden frames captured with `tcpdump -n -e -vv -xx` on veth pairs between network namespaces
 * (10.1.0.1 = A, 02:00:00:00:0a:01; 10.1.0.2 = R, 02:00:00:00:0a:02; R forwards to 10.2.0.1 over a
 * link with MTU 68). Checksum offload was turned off (`ethtool -K tx off`) so checksums are real.
 * The bytes are pasted as tcpdump printed them; `hex()` drops the offsets.
 */
import { hex } from "./helpers.js";
/**
 * ARP request from A.
 *
 * 04:41:42.208184 02:00:00:00:0a:01 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 42: Ethernet (len 6), IPv4 (len 4), Request who-has 10.1.0.2 tell 10.1.0.1, length 28
 */
export const ARP_REQUEST = hex(`
  0x0000:  ffff ffff ffff 0200 0000 0a01 0806 0001
  0x0010:  0800 0604 0001 0200 0000 0a01 0a01 0001
  0x0020:  0000 0000 0000 0a01 0002
`);

/**
 * ARP reply from R (Linux).
 *
 * 04:41:42.208209 02:00:00:00:0a:02 > 02:00:00:00:0a:01, ethertype ARP (0x0806), length 42: Ethernet (len 6), IPv4 (len 4), Reply 10.1.0.2 is-at 02:00:00:00:0a:02, length 28
 */
export const ARP_REPLY = hex(`
  0x0000:  0200 0000 0a01 0200 0000 0a02 0806 0001
  0x0010:  0800 0604 0002 0200 0000 0a02 0a01 0002
  0x0020:  0200 0000 0a01 0a01 0001
`);

/**
 * ping 10.1.0.2
 *
 * 04:41:42.208212 02:00:00:00:0a:01 > 02:00:00:00:0a:02, ethertype IPv4 (0x0800), length 98: (tos 0x0, ttl 64, id 9903, offset 0, flags [DF], proto ICMP (1), length 84)
 * 10.1.0.1 > 10.1.0.2: ICMP echo request, id 4561, seq 1, length 64
 */
export const ICMP_ECHO = hex(`
  0x0000:  0200 0000 0a02 0200 0000 0a01 0800 4500
  0x0010:  0054 26af 4000 4001 fff5 0a01 0001 0a01
  0x0020:  0002 0800 00a2 11d1 0001 0621 016b 0000
  0x0030:  0000 1c2d 0300 0000 0000 1011 1213 1415
  0x0040:  1617 1819 1a1b 1c1d 1e1f 2021 2223 2425
  0x0050:  2627 2829 2a2b 2c2d 2e2f 3031 3233 3435
  0x0060:  3637
`);

/**
 * Linux echo reply to ICMP_ECHO.
 *
 * 04:41:42.208323 02:00:00:00:0a:02 > 02:00:00:00:0a:01, ethertype IPv4 (0x0800), length 98: (tos 0x0, ttl 64, id 28274, offset 0, flags [none], proto ICMP (1), length 84)
 * 10.1.0.2 > 10.1.0.1: ICMP echo reply, id 4561, seq 1, length 64
 */
export const ICMP_ECHO_REPLY = hex(`
  0x0000:  0200 0000 0a01 0200 0000 0a02 0800 4500
  0x0010:  0054 6e72 0000 4001 f832 0a01 0002 0a01
  0x0020:  0001 0000 08a2 11d1 0001 0621 016b 0000
  0x0030:  0000 1c2d 0300 0000 0000 1011 1213 1415
  0x0040:  1617 1819 1a1b 1c1d 1e1f 2021 2223 2425
  0x0050:  2627 2829 2a2b 2c2d 2e2f 3031 3233 3435
  0x0060:  3637
`);

/**
 * nc 10.1.0.2 8080: SYN with MSS, SACK-permitted, timestamps, window scale.
 *
 * 04:41:42.514897 02:00:00:00:0a:01 > 02:00:00:00:0a:02, ethertype IPv4 (0x0800), length 74: (tos 0x0, ttl 64, id 13136, offset 0, flags [DF], proto TCP (6), length 60)
 * 10.1.0.1.34020 > 10.1.0.2.8080: Flags [S], cksum 0x46c6 (correct), seq 3336364689, win 64240, options [mss 1460,sackOK,TS val 2945119443 ecr 0,nop,wscale 10], length 0
 */
export const TCP_SYN = hex(`
  0x0000:  0200 0000 0a02 0200 0000 0a01 0800 4500
  0x0010:  003c 3350 4000 4006 f367 0a01 0001 0a01
  0x0020:  0002 84e4 1f90 c6dc e291 0000 0000 a002
  0x0030:  faf0 46c6 0000 0204 05b4 0402 080a af8a
  0x0040:  f4d3 0000 0000 0103 030a
`);

/**
 * SYN-ACK.
 *
 * 04:41:42.514942 02:00:00:00:0a:02 > 02:00:00:00:0a:01, ethertype IPv4 (0x0800), length 74: (tos 0x0, ttl 64, id 0, offset 0, flags [DF], proto TCP (6), length 60)
 * 10.1.0.2.8080 > 10.1.0.1.34020: Flags [S.], cksum 0x343a (correct), seq 4141428832, ack 3336364690, win 65160, options [mss 1460,sackOK,TS val 522897534 ecr 2945119443,nop,wscale 10], length 0
 */
export const TCP_SYN_ACK = hex(`
  0x0000:  0200 0000 0a01 0200 0000 0a02 0800 4500
  0x0010:  003c 0000 4000 4006 26b8 0a01 0002 0a01
  0x0020:  0001 1f90 84e4 f6d9 3060 c6dc e292 a012
  0x0030:  fe88 343a 0000 0204 05b4 0402 080a 1f2a
  0x0040:  c87e af8a f4d3 0103 030a
`);

/**
 * Data segment "hello\n".
 *
 * 04:41:42.515111 02:00:00:00:0a:01 > 02:00:00:00:0a:02, ethertype IPv4 (0x0800), length 72: (tos 0x0, ttl 64, id 13138, offset 0, flags [DF], proto TCP (6), length 58)
 * 10.1.0.1.34020 > 10.1.0.2.8080: Flags [P.], cksum 0x1d69 (correct), seq 1:7, ack 1, win 63, options [nop,nop,TS val 2945119443 ecr 522897534], length 6: HTTP
 */
export const TCP_PSH = hex(`
  0x0000:  0200 0000 0a02 0200 0000 0a01 0800 4500
  0x0010:  003a 3352 4000 4006 f367 0a01 0001 0a01
  0x0020:  0002 84e4 1f90 c6dc e292 f6d9 3061 8018
  0x0030:  003f 1d69 0000 0101 080a af8a f4d3 1f2a
  0x0040:  c87e 6865 6c6c 6f0a
`);

/**
 * nc -u 10.1.0.2 5353 ("hi\n").
 *
 * 04:41:42.821735 02:00:00:00:0a:01 > 02:00:00:00:0a:02, ethertype IPv4 (0x0800), length 45: (tos 0x0, ttl 64, id 41453, offset 0, flags [DF], proto UDP (17), length 31)
 * 10.1.0.1.40630 > 10.1.0.2.5353: [udp sum ok] domain [length 3 < 12] (invalid)
 */
export const UDP_DGRAM = hex(`
  0x0000:  0200 0000 0a02 0200 0000 0a01 0800 4500
  0x0010:  001f a1ed 4000 4011 84dc 0a01 0001 0a01
  0x0020:  0002 9eb6 14e9 000b c5ca 6869 0a
`);

/**
 * Linux port unreachable quoting UDP_DGRAM whole.
 *
 * 04:41:42.821886 02:00:00:00:0a:02 > 02:00:00:00:0a:01, ethertype IPv4 (0x0800), length 73: (tos 0xc0, ttl 64, id 28411, offset 0, flags [none], proto ICMP (1), length 59)
 * 10.1.0.2 > 10.1.0.1: ICMP 10.1.0.2 udp port 5353 unreachable, length 39
 * (tos 0x0, ttl 64, id 41453, offset 0, flags [DF], proto UDP (17), length 31)
 * 10.1.0.1.40630 > 10.1.0.2.5353: [udp sum ok] domain [length 3 < 12] (invalid)
 */
export const ICMP_PORT_UNREACH = hex(`
  0x0000:  0200 0000 0a01 0200 0000 0a02 0800 45c0
  0x0010:  003b 6efb 0000 4001 f702 0a01 0002 0a01
  0x0020:  0001 0303 111e 0000 0000 4500 001f a1ed
  0x0030:  4000 4011 84dc 0a01 0001 0a01 0002 9eb6
  0x0040:  14e9 000b c5ca 6869 0a
`);

/**
 * nc 10.1.0.2 81 (closed port): SYN.
 *
 * 04:41:43.127966 02:00:00:00:0a:01 > 02:00:00:00:0a:02, ethertype IPv4 (0x0800), length 74: (tos 0x0, ttl 64, id 28596, offset 0, flags [DF], proto TCP (6), length 60)
 * 10.1.0.1.40012 > 10.1.0.2.81: Flags [S], cksum 0xe54b (correct), seq 325786883, win 64240, options [mss 1460,sackOK,TS val 791828350 ecr 0,nop,wscale 10], length 0
 */
export const TCP_SYN_81 = hex(`
  0x0000:  0200 0000 0a02 0200 0000 0a01 0800 4500
  0x0010:  003c 6fb4 4000 4006 b703 0a01 0001 0a01
  0x0020:  0002 9c4c 0051 136b 1d03 0000 0000 a002
  0x0030:  faf0 e54b 0000 0204 05b4 0402 080a 2f32
  0x0040:  577e 0000 0000 0103 030a
`);

/**
 * RST-ACK for TCP_SYN_81.
 *
 * 04:41:43.128023 02:00:00:00:0a:02 > 02:00:00:00:0a:01, ethertype IPv4 (0x0800), length 54: (tos 0x0, ttl 64, id 0, offset 0, flags [DF], proto TCP (6), length 40)
 * 10.1.0.2.81 > 10.1.0.1.40012: Flags [R.], cksum 0xcebf (correct), seq 0, ack 325786884, win 0, length 0
 */
export const TCP_RST = hex(`
  0x0000:  0200 0000 0a01 0200 0000 0a02 0800 4500
  0x0010:  0028 0000 4000 4006 26cc 0a01 0002 0a01
  0x0020:  0001 0051 9c4c 0000 0000 136b 1d04 5014
  0x0030:  0000 cebf 0000
`);

/**
 * ping -s 72 -M do 10.2.0.1 through R whose next link has MTU 68.
 *
 * 04:41:43.143283 02:00:00:00:0a:01 > 02:00:00:00:0a:02, ethertype IPv4 (0x0800), length 114: (tos 0x0, ttl 64, id 0, offset 0, flags [DF], proto ICMP (1), length 100)
 * 10.1.0.1 > 10.2.0.1: ICMP echo request, id 4571, seq 1, length 80
 */
export const ICMP_ECHO_DF_100 = hex(`
  0x0000:  0200 0000 0a02 0200 0000 0a01 0800 4500
  0x0010:  0064 0000 4000 4001 2695 0a01 0001 0a02
  0x0020:  0001 0800 8493 11db 0001 0721 016b 0000
  0x0030:  0000 9e2f 0200 0000 0000 1011 1213 1415
  0x0040:  1617 1819 1a1b 1c1d 1e1f 2021 2223 2425
  0x0050:  2627 2829 2a2b 2c2d 2e2f 3031 3233 3435
  0x0060:  3637 3839 3a3b 3c3d 3e3f 4041 4243 4445
  0x0070:  4647
`);

/**
 * R: fragmentation needed, next-hop MTU 68, quoting ICMP_ECHO_DF_100 whole.
 *
 * 04:41:43.143315 02:00:00:00:0a:02 > 02:00:00:00:0a:01, ethertype IPv4 (0x0800), length 142: (tos 0xc0, ttl 64, id 28472, offset 0, flags [none], proto ICMP (1), length 128)
 * 10.1.0.2 > 10.1.0.1: ICMP 10.2.0.1 unreachable - need to frag (mtu 68), length 108
 * (tos 0x0, ttl 64, id 0, offset 0, flags [DF], proto ICMP (1), length 100)
 * 10.1.0.1 > 10.2.0.1: ICMP echo request, id 4571, seq 1, length 80
 */
export const ICMP_FRAG_NEEDED = hex(`
  0x0000:  0200 0000 0a01 0200 0000 0a02 0800 45c0
  0x0010:  0080 6f38 0000 4001 f680 0a01 0002 0a01
  0x0020:  0001 0304 fcb7 0000 0044 4500 0064 0000
  0x0030:  4000 4001 2695 0a01 0001 0a02 0001 0800
  0x0040:  8493 11db 0001 0721 016b 0000 0000 9e2f
  0x0050:  0200 0000 0000 1011 1213 1415 1617 1819
  0x0060:  1a1b 1c1d 1e1f 2021 2223 2425 2627 2829
  0x0070:  2a2b 2c2d 2e2f 3031 3233 3435 3637 3839
  0x0080:  3a3b 3c3d 3e3f 4041 4243 4445 4647
`);

/**
 * ping -t 1 -s 8 10.2.0.1
 *
 * 04:41:43.148041 02:00:00:00:0a:01 > 02:00:00:00:0a:02, ethertype IPv4 (0x0800), length 50: (tos 0x0, ttl 1, id 53736, offset 0, flags [none], proto ICMP (1), length 36)
 * 10.1.0.1 > 10.2.0.1: ICMP echo request, id 4572, seq 1, length 16
 */
export const ICMP_ECHO_TTL1 = hex(`
  0x0000:  0200 0000 0a02 0200 0000 0a01 0800 4500
  0x0010:  0024 d1e8 0000 0101 d3ec 0a01 0001 0a02
  0x0020:  0001 0800 da12 11dc 0001 0001 0203 0405
  0x0030:  0607
`);

/**
 * R: time exceeded in transit, quoting ICMP_ECHO_TTL1.
 *
 * 04:41:43.148073 02:00:00:00:0a:02 > 02:00:00:00:0a:01, ethertype IPv4 (0x0800), length 78: (tos 0xc0, ttl 64, id 28473, offset 0, flags [none], proto ICMP (1), length 64)
 * 10.1.0.2 > 10.1.0.1: ICMP time exceeded in-transit, length 44
 * (tos 0x0, ttl 1, id 53736, offset 0, flags [none], proto ICMP (1), length 36)
 * 10.1.0.1 > 10.2.0.1: ICMP echo request, id 4572, seq 1, length 16
 */
export const ICMP_TIME_EXCEEDED = hex(`
  0x0000:  0200 0000 0a01 0200 0000 0a02 0800 45c0
  0x0010:  0040 6f39 0000 4001 f6bf 0a01 0002 0a01
  0x0020:  0001 0b00 f4ff 0000 0000 4500 0024 d1e8
  0x0030:  0000 0101 d3ec 0a01 0001 0a02 0001 0800
  0x0040:  da12 11dc 0001 0001 0203 0405 0607
`);

/**
 * ping -R -s 8 10.1.0.2: IP options NOP + Record Route (ihl 15).
 *
 * 04:41:43.152801 02:00:00:00:0a:01 > 02:00:00:00:0a:02, ethertype IPv4 (0x0800), length 90: (tos 0x0, ttl 64, id 10028, offset 0, flags [DF], proto ICMP (1), length 76, options (NOP,RR 10.1.0.1, 0.0.0.0 0.0.0.0 0.0.0.0 0.0.0.0 0.0.0.0 0.0.0.0 0.0.0.0 0.0.0.0))
 * 10.1.0.1 > 10.1.0.2: ICMP echo request, id 4573, seq 1, length 16
 */
export const ICMP_ECHO_RR = hex(`
  0x0000:  0200 0000 0a02 0200 0000 0a01 0800 4f00
  0x0010:  004c 272c 4000 4001 c36f 0a01 0001 0a01
  0x0020:  0002 0107 2708 0a01 0001 0000 0000 0000
  0x0030:  0000 0000 0000 0000 0000 0000 0000 0000
  0x0040:  0000 0000 0000 0000 0000 0800 da11 11dd
  0x0050:  0001 0001 0203 0405 0607
`);

/**
 * Reply: Record Route filled in, then EOL.
 *
 * 04:41:43.152828 02:00:00:00:0a:02 > 02:00:00:00:0a:01, ethertype IPv4 (0x0800), length 90: (tos 0x0, ttl 64, id 28474, offset 0, flags [none], proto ICMP (1), length 76, options (RR 10.1.0.1, 10.1.0.2, 10.1.0.2, 0.0.0.0 0.0.0.0 0.0.0.0 0.0.0.0 0.0.0.0 0.0.0.0,EOL))
 * 10.1.0.2 > 10.1.0.1: ICMP echo reply, id 4573, seq 1, length 16
 */
export const ICMP_ECHO_REPLY_RR = hex(`
  0x0000:  0200 0000 0a01 0200 0000 0a02 0800 4f00
  0x0010:  004c 6f3a 0000 4001 ce2d 0a01 0002 0a01
  0x0020:  0001 0727 100a 0100 010a 0100 020a 0100
  0x0030:  0200 0000 0000 0000 0000 0000 0000 0000
  0x0040:  0000 0000 0000 0000 0000 0000 e211 11dd
  0x0050:  0001 0001 0203 0405 0607
`);

/**
 * ping -s 60 -M dont 10.2.0.1, fragmented by R for MTU 68: first fragment (MF, offset 0).
 *
 * 04:41:43.161842 02:00:00:00:0b:02 > 02:00:00:00:0b:01, ethertype IPv4 (0x0800), length 82: (tos 0x0, ttl 63, id 53739, offset 0, flags [+], proto ICMP (1), length 68)
 * 10.1.0.1 > 10.2.0.1: ICMP echo request, id 4575, seq 1, length 48
 */
export const FRAG_FIRST = hex(`
  0x0000:  0200 0000 0b01 0200 0000 0b02 0800 4500
  0x0010:  0044 d1eb 2000 3f01 75c9 0a01 0001 0a02
  0x0020:  0001 0800 b1d4 11df 0001 0721 016b 0000
  0x0030:  0000 f877 0200 0000 0000 1011 1213 1415
  0x0040:  1617 1819 1a1b 1c1d 1e1f 2021 2223 2425
  0x0050:  2627
`);

/**
 * Second (last) fragment of the same datagram (offset 48 bytes = 6 units).
 *
 * 04:41:43.161843 02:00:00:00:0b:02 > 02:00:00:00:0b:01, ethertype IPv4 (0x0800), length 54: (tos 0x0, ttl 63, id 53739, offset 48, flags [none], proto ICMP (1), length 40)
 * 10.1.0.1 > 10.2.0.1: ip-proto-1
 */
export const FRAG_LATER = hex(`
  0x0000:  0200 0000 0b01 0200 0000 0b02 0800 4500
  0x0010:  0028 d1eb 0006 3f01 95df 0a01 0001 0a02
  0x0020:  0001 2829 2a2b 2c2d 2e2f 3031 3233 3435
  0x0030:  3637 3839 3a3b
`);

/**
 * 802.1Q-tagged UDP (vid 100, pcp 3). The container has no 8021q module, so this frame
 * was written by a small AF_PACKET script inside the namespace; tcpdump captured it on the wire.
 *
 * 04:41:43.261189 02:00:00:00:0a:01 > 02:00:00:00:0a:02, ethertype 802.1Q (0x8100), length 50: vlan 100, p 3, ethertype IPv4 (0x0800), (tos 0x0, ttl 64, id 4660, offset 0, flags [DF], proto UDP (17), length 32)
 * 10.100.0.1.40000 > 10.100.0.2.9999: [udp sum ok] UDP, length 4
 */
export const VLAN_UDP = hex(`
  0x0000:  0200 0000 0a02 0200 0000 0a01 8100 6064
  0x0010:  0800 4500 0020 1234 4000 4011 13cf 0a64
  0x0020:  0001 0a64 0002 9c40 270f 000c 4fe1 766c
  0x0030:  616e
`);

/**
 * B's echo reply to FRAG_FIRST's datagram, first fragment, as B sent it (captured on B's link).
 *
 * 04:41:43.162038 02:00:00:00:0b:01 > 02:00:00:00:0b:02, ethertype IPv4 (0x0800), length 82: (tos 0x0, ttl 64, id 1276, offset 0, flags [+], proto ICMP (1), length 68)
 * 10.2.0.1 > 10.1.0.1: ICMP echo reply, id 4575, seq 1, length 48
 */
export const FRAG_REPLY_AT_B = hex(`
  0x0000:  0200 0000 0b02 0200 0000 0b01 0800 4500
  0x0010:  0044 04fc 2000 4001 41b9 0a02 0001 0a01
  0x0020:  0001 0000 b9d4 11df 0001 0721 016b 0000
  0x0030:  0000 f877 0200 0000 0000 1011 1213 1415
  0x0040:  1617 1819 1a1b 1c1d 1e1f 2021 2223 2425
  0x0050:  2627
`);

/**
 * The same fragment after R forwarded it (captured on A's link): TTL 63, new MACs.
 *
 * 04:41:43.162047 02:00:00:00:0a:02 > 02:00:00:00:0a:01, ethertype IPv4 (0x0800), length 82: (tos 0x0, ttl 63, id 1276, offset 0, flags [+], proto ICMP (1), length 68)
 * 10.2.0.1 > 10.1.0.1: ICMP echo reply, id 4575, seq 1, length 48
 */
export const FRAG_REPLY_AT_A = hex(`
  0x0000:  0200 0000 0a01 0200 0000 0a02 0800 4500
  0x0010:  0044 04fc 2000 3f01 42b9 0a02 0001 0a01
  0x0020:  0001 0000 b9d4 11df 0001 0721 016b 0000
  0x0030:  0000 f877 0200 0000 0000 1011 1213 1415
  0x0040:  1617 1819 1a1b 1c1d 1e1f 2021 2223 2425
  0x0050:  2627
`);
