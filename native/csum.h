// Completing TCP/UDP checksums that a local sender left to offload.
//
// A frame that never left the host (veth between namespaces, a TAP's kernel side with offloads,
// virtio with VIRTIO_NET_HDR_F_NEEDS_CSUM) reaches an AF_PACKET socket as CHECKSUM_PARTIAL,
// flagged TP_STATUS_CSUMNOTREADY: its TCP/UDP checksum field holds only the pseudo-header sum and
// the "device" that should have finished it never will. Whoever forwards such a frame to another
// interface must finish it, or the receiver drops it.
//
// Neither tpacket2_hdr nor tpacket_auxdata says where the checksum starts (only the
// PACKET_VNET_HDR header does), so we use what Linux uses for TCP and UDP over IPv4: the L4
// header of the IPv4 packet, or of the inner IPv4 packet of an IPIP frame (an ipip tunnel keeps
// the inner segment CHECKSUM_PARTIAL). The checksum is computed afresh over the pseudo-header and
// the whole segment, so it does not matter what the field held.
#pragma once

#include <cstdint>

namespace lvsio {

// Finish the L4 checksum of an Ethernet frame (untagged or one 802.1Q tag) carrying IPv4
// TCP/UDP, or IPIP with TCP/UDP inside. Returns true if it wrote a checksum; false if the frame
// is anything else (IPv6, a fragment, a short or inconsistent header), which it leaves alone.
bool FinishL4Checksum(uint8_t* frame, uint32_t len);

}  // namespace lvsio
