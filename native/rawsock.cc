// AF_PACKET sockets bound to one interface.
//
// mode "ring" (default): TPACKET_V2 RX and TX rings in one mmap. With zeroCopy (default) the RX
//   ring is published to JS as an external ArrayBuffer and rxView leaves frames where they lie
//   (JS parses and rewrites them there; release() hands the slots back); without it rx copies
//   frames out into the slab. tx writes each frame once into the TX ring and kicks the kernel
//   with one send(). V2 rather than V3: V3's block timeout adds latency at low rates and its TX
//   ring behaves like V2's anyway.
// mode "mmsg": recvmmsg straight into the slab slots and sendmmsg from them.
//
// The socket is created with protocol 0 (it receives nothing), the filter and rings are set up,
// and only then is it bound with ETH_P_ALL, so no unfiltered frame ever reaches the ring.
//
// Filters: by default the director's (frames to our MACs and to the extra `macs`, group ARP);
// `ipip` (a list of local
// IPv4 addresses) replaces it with the IPIP decapsulator's: untagged IPv4 protocol 4 to one of
// those addresses, PACKET_HOST only (socket bound to ETH_P_IP).
//
// Frames a local sender left with an unfinished TCP/UDP checksum (TP_STATUS_CSUMNOTREADY, from
// the ring header or, in mmsg mode, from PACKET_AUXDATA) get it finished in Link::Rx* (csum.h).
#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include "addon.h"
#include "common.h"
#include "link.h"

namespace lvsio {

namespace {

constexpr size_t kMaxFilterMacs = 32;
constexpr size_t kMaxFilterAddrs = 32;

sock_filter Stmt(uint16_t code, uint32_t k) { return sock_filter{code, 0, 0, k}; }
sock_filter Jump(uint16_t code, uint32_t k, size_t self, size_t jt, size_t jf) {
  // Targets are absolute instruction indices; classic BPF wants offsets from the next one.
  return sock_filter{code, static_cast<uint8_t>(jt - self - 1), static_cast<uint8_t>(jf - self - 1), k};
}

// What the director needs: frames whose destination is one of `macs` (IPv4, ARP, 802.1Q), and
// ARP sent to a group address (broadcast/multicast). Everything else is dropped in the kernel.
// `macs` may hold group (multicast) addresses: they are compared first, so IPv4 to them passes
// (VRRP's 01:00:5e:00:00:12, connection sync's 01:00:5e:00:00:51).
std::vector<sock_filter> DirectorFilter(const std::vector<const uint8_t*>& macs) {
  const size_t n = macs.size();
  const size_t group = 4 * n, unicast = group + 4, accept = unicast + 4, drop = accept + 1;
  std::vector<sock_filter> p;
  for (size_t m = 0; m < n; m++) {
    const uint8_t* a = macs[m];
    const size_t b = p.size();
    const uint32_t lo = (uint32_t{a[2]} << 24) | (uint32_t{a[3]} << 16) | (uint32_t{a[4]} << 8) | a[5];
    const uint32_t hi = (uint32_t{a[0]} << 8) | a[1];
    p.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, 2));              // A = dst[2..5]
    p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, lo, b + 1, b + 2, b + 4));
    p.push_back(Stmt(BPF_LD | BPF_H | BPF_ABS, 0));              // A = dst[0..1]
    p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, hi, b + 3, unicast, b + 4));
  }
  p.push_back(Stmt(BPF_LD | BPF_B | BPF_ABS, 0));  // group bit of the destination
  p.push_back(Jump(BPF_JMP | BPF_JSET | BPF_K, 1, group + 1, group + 2, drop));
  p.push_back(Stmt(BPF_LD | BPF_H | BPF_ABS, 12));
  p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_ARP, group + 3, accept, drop));
  p.push_back(Stmt(BPF_LD | BPF_H | BPF_ABS, 12));  // unicast to us: IPv4, ARP or VLAN-tagged
  p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, unicast + 1, accept, unicast + 2));
  p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_ARP, unicast + 2, accept, unicast + 3));
  p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_8021Q, unicast + 3, accept, drop));
  p.push_back(Stmt(BPF_RET | BPF_K, 0x40000));
  p.push_back(Stmt(BPF_RET | BPF_K, 0));
  return p;
}

// What a userspace IPIP decapsulator needs: untagged IPv4 frames addressed to this host
// (PACKET_HOST: not seen only because the device is promiscuous) with protocol 4 (IPIP) and a
// destination address in `addrs` (network byte order, 4 bytes each).
std::vector<sock_filter> IpipFilter(const std::vector<uint32_t>& addrs) {
  const size_t n = addrs.size();
  const size_t first = 7, host = first + n, accept = host + 2, drop = accept + 1;
  std::vector<sock_filter> p;
  p.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT)));
  p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 2, drop));
  p.push_back(Stmt(BPF_LD | BPF_H | BPF_ABS, 12));
  p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 3, 4, drop));
  p.push_back(Stmt(BPF_LD | BPF_B | BPF_ABS, ETH_HLEN + 9));  // IPv4 protocol
  p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_IPIP, 5, 6, drop));
  p.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, ETH_HLEN + 16));  // IPv4 destination address
  for (size_t k = 0; k < n; k++) {
    const size_t at = first + k;
    p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, ntohl(addrs[k]), at, host, k + 1 < n ? at + 1 : drop));
  }
  p.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, static_cast<uint32_t>(SKF_AD_OFF + SKF_AD_PKTTYPE)));
  p.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, PACKET_HOST, host + 1, accept, drop));
  p.push_back(Stmt(BPF_RET | BPF_K, 0x40000));
  p.push_back(Stmt(BPF_RET | BPF_K, 0));
  return p;
}

#ifndef PACKET_FANOUT_FLAG_IGNORE_OUTGOING
#define PACKET_FANOUT_FLAG_IGNORE_OUTGOING 0x4000
#endif

uint32_t RoundPow2(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

}  // namespace

void SetFanoutData(Napi::Env env, int fd, const uint8_t* bytes, size_t n, const std::string& ifname) {
  if (n == 0 || n % sizeof(sock_filter) != 0 || n / sizeof(sock_filter) > BPF_MAXINSNS)
    throw Napi::RangeError::New(env, "fanout program: 1 to 4096 sock_filter structs of 8 bytes");
  std::vector<sock_filter> prog(n / sizeof(sock_filter));
  memcpy(prog.data(), bytes, n);
  struct sock_fprog fp = {static_cast<unsigned short>(prog.size()), prog.data()};
  if (setsockopt(fd, SOL_PACKET, PACKET_FANOUT_DATA, &fp, sizeof fp) != 0)
    ThrowErrno(env, "fanout", "setsockopt(PACKET_FANOUT_DATA)", errno, "packet socket on " + ifname);
}

Napi::Value OpenRaw(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "openRaw(options)");
  Napi::Object o = info[0].As<Napi::Object>();
  const std::string ifname = OptString(o, "ifname");
  const std::string netns = OptString(o, "netns");
  const std::string mode = OptString(o, "mode", "ring");
  const bool filter = OptBool(o, "filter", true);
  const bool qdiscBypass = OptBool(o, "qdiscBypass", true);
  const bool zeroCopy = OptBool(o, "zeroCopy", true);
  const int64_t busyPoll = OptInt(o, "busyPoll", 0);
  const int64_t rxFrames = OptInt(o, "rxFrames", 2048);
  const int64_t txFrames = OptInt(o, "txFrames", 512);
  if (mode != "ring" && mode != "mmsg") throw Napi::TypeError::New(env, "option mode must be \"ring\" or \"mmsg\"");
  if (rxFrames < 8 || rxFrames > (1 << 20) || txFrames < 8 || txFrames > (1 << 20))
    throw Napi::RangeError::New(env, "rxFrames/txFrames must be in 8..1048576");
  if (busyPoll < 0 || busyPoll > 1000000) throw Napi::RangeError::New(env, "busyPoll must be in 0..1000000 (µs)");
  // fanout: join PACKET_FANOUT group `fanoutGroup` (0..65535; -1: none), steered by the classic
  // BPF program `fanoutProgram` (PACKET_FANOUT_CBPF): data-path workers, docs/workers.md.
  const int64_t fanoutGroup = OptInt(o, "fanoutGroup", -1);
  if (fanoutGroup < -1 || fanoutGroup > 65535) throw Napi::RangeError::New(env, "fanoutGroup must be in 0..65535");
  std::vector<uint8_t> fanoutProg;
  Napi::Value fpV = o.Get("fanoutProgram");
  if (fanoutGroup >= 0) {
    if (!fpV.IsTypedArray() || fpV.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      throw Napi::TypeError::New(env, "option fanoutProgram must be a Uint8Array of sock_filter structs");
    Napi::Uint8Array a = fpV.As<Napi::Uint8Array>();
    fanoutProg.assign(a.Data(), a.Data() + a.ElementLength());
  }
  std::vector<uint8_t> extra;
  Napi::Value macsV = o.Get("macs");
  if (!macsV.IsUndefined() && !macsV.IsNull()) {
    if (!macsV.IsTypedArray() || macsV.As<Napi::Uint8Array>().ElementLength() % 6 != 0)
      throw Napi::TypeError::New(env, "option macs must be a Uint8Array of 6-byte addresses");
    Napi::Uint8Array a = macsV.As<Napi::Uint8Array>();
    extra.assign(a.Data(), a.Data() + a.ElementLength());
    if (extra.size() / 6 + 1 > kMaxFilterMacs) throw Napi::RangeError::New(env, "at most 31 extra MACs");
  }
  std::vector<uint32_t> ipip;  // network byte order
  Napi::Value ipipV = o.Get("ipip");
  if (!ipipV.IsUndefined() && !ipipV.IsNull()) {
    if (!ipipV.IsTypedArray() || ipipV.As<Napi::Uint8Array>().ElementLength() % 4 != 0 ||
        ipipV.As<Napi::Uint8Array>().ElementLength() == 0)
      throw Napi::TypeError::New(env, "option ipip must be a Uint8Array of 4-byte IPv4 addresses");
    Napi::Uint8Array a = ipipV.As<Napi::Uint8Array>();
    if (a.ElementLength() / 4 > kMaxFilterAddrs) throw Napi::RangeError::New(env, "at most 32 ipip addresses");
    if (!extra.empty()) throw Napi::TypeError::New(env, "options ipip and macs exclude each other");
    for (size_t i = 0; i < a.ElementLength(); i += 4) {
      uint32_t v;
      memcpy(&v, a.Data() + i, 4);
      ipip.push_back(v);
    }
  }

  struct ifreq ifr;
  SetIfName(env, ifr, ifname, "ifname");
  NetnsGuard ns(env, netns);
  Fd ctl(ControlSocket(env, "socket"));
  const int ifindex = IfIndex(env, ctl.get(), ifname, "ifname");
  uint8_t mac[6];
  GetMac(env, ctl.get(), ifname, mac, "ifname");
  const int mtu = GetMtu(env, ctl.get(), ifname, "ifname");

  Fd s(socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s) ThrowErrno(env, "socket", "socket(AF_PACKET)", errno, "packet socket");
  auto setopt = [&](int level, int opt, const void* v, socklen_t l, const char* what) {
    if (setsockopt(s.get(), level, opt, v, l) != 0) ThrowErrno(env, "socket", what, errno, "packet socket on " + ifname);
  };

  if (!ipip.empty()) {
    std::vector<sock_filter> prog = IpipFilter(ipip);
    struct sock_fprog fp = {static_cast<unsigned short>(prog.size()), prog.data()};
    setopt(SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp, "setsockopt(SO_ATTACH_FILTER)");
  } else if (filter) {
    std::vector<const uint8_t*> macs{mac};
    for (size_t i = 0; i < extra.size(); i += 6)
      if (memcmp(extra.data() + i, mac, 6) != 0) macs.push_back(extra.data() + i);
    std::vector<sock_filter> prog = DirectorFilter(macs);
    struct sock_fprog fp = {static_cast<unsigned short>(prog.size()), prog.data()};
    setopt(SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp, "setsockopt(SO_ATTACH_FILTER)");
  }
  const int one = 1;
  // Not seeing our own transmissions matters with ETH_P_ALL; kernels before 4.20 lack it.
  if (setsockopt(s.get(), SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) != 0 && errno != ENOPROTOOPT)
    ThrowErrno(env, "socket", "setsockopt(PACKET_IGNORE_OUTGOING)", errno, "packet socket on " + ifname);
  if (qdiscBypass) setopt(SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one, "setsockopt(PACKET_QDISC_BYPASS)");
  if (busyPoll > 0) {
    // Busy polling: a blocking wait (or epoll) on this socket spins on the device's NAPI context
    // for up to busyPoll µs instead of sleeping until the interrupt; SO_PREFER_BUSY_POLL (5.11)
    // asks the kernel to leave the device's softirq processing to us while we poll.
    const int us = static_cast<int>(busyPoll);
    setopt(SOL_SOCKET, SO_BUSY_POLL, &us, sizeof us, "setsockopt(SO_BUSY_POLL)");
    if (setsockopt(s.get(), SOL_SOCKET, SO_PREFER_BUSY_POLL, &one, sizeof one) != 0 && errno != ENOPROTOOPT &&
        errno != EINVAL)
      ThrowErrno(env, "socket", "setsockopt(SO_PREFER_BUSY_POLL)", errno, "packet socket on " + ifname);
  }

  RingConfig ring;
  if (mode == "ring") {
    const int version = TPACKET_V2;
    setopt(SOL_PACKET, PACKET_VERSION, &version, sizeof version, "setsockopt(PACKET_VERSION)");
    // Skip frames the kernel finds malformed instead of stalling the TX ring on them.
    setopt(SOL_PACKET, PACKET_LOSS, &one, sizeof one, "setsockopt(PACKET_LOSS)");
    // Frames start kRingReserve bytes further into their ring frame (headroom for zero-copy
    // rewrites: the kernel puts the network header at TPACKET_ALIGN(hdrlen + 16) + reserve).
    const unsigned reserve = kRingReserve;
    setopt(SOL_PACKET, PACKET_RESERVE, &reserve, sizeof reserve, "setsockopt(PACKET_RESERVE)");
    // Room for the header, the MAC offset alignment, the reserve, a VLAN tag, the largest frame
    // and tail room to grow it in place.
    const uint32_t need = TPACKET_ALIGN(TPACKET2_HDRLEN) + 16 + reserve + static_cast<uint32_t>(mtu) + ETH_HLEN + 4 +
                          kRingTailroom;
    const uint32_t frameSize = RoundPow2(need < 2048 ? 2048 : need);
    const uint32_t blockSize = frameSize > 65536 ? frameSize : 65536;
    const uint32_t perBlock = blockSize / frameSize;
    auto makeReq = [&](int64_t frames) {
      struct tpacket_req r;
      r.tp_block_size = blockSize;
      r.tp_block_nr = static_cast<unsigned>((frames + perBlock - 1) / perBlock);
      r.tp_frame_size = frameSize;
      r.tp_frame_nr = r.tp_block_nr * perBlock;
      return r;
    };
    struct tpacket_req rx = makeReq(rxFrames), tx = makeReq(txFrames);
    setopt(SOL_PACKET, PACKET_RX_RING, &rx, sizeof rx, "setsockopt(PACKET_RX_RING)");
    setopt(SOL_PACKET, PACKET_TX_RING, &tx, sizeof tx, "setsockopt(PACKET_TX_RING)");
    const size_t rxLen = static_cast<size_t>(rx.tp_block_size) * rx.tp_block_nr;
    const size_t txLen = static_cast<size_t>(tx.tp_block_size) * tx.tp_block_nr;
    void* map = mmap(nullptr, rxLen + txLen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, s.get(), 0);
    if (map == MAP_FAILED) map = mmap(nullptr, rxLen + txLen, PROT_READ | PROT_WRITE, MAP_SHARED, s.get(), 0);
    if (map == MAP_FAILED) ThrowErrno(env, "socket", "mmap", errno, "packet ring on " + ifname);
    ring.shared = new RingMap();
    ring.shared->map = static_cast<uint8_t*>(map);
    ring.shared->len = rxLen + txLen;
    ring.map = static_cast<uint8_t*>(map);
    ring.mapLen = rxLen + txLen;
    ring.rx = ring.map;
    ring.rxFrames = rx.tp_frame_nr;
    ring.rxFrameSize = frameSize;
    ring.tx = ring.map + rxLen;
    ring.txFrames = tx.tp_frame_nr;
    ring.txFrameSize = frameSize;
    // Every frame in flight is an skb charged to the socket: let the whole TX ring be in flight,
    // or send() stops with EAGAIN long before the ring is full.
    const int sndbuf = static_cast<int>(tx.tp_frame_nr > 16384 ? 16384 * 4096u : tx.tp_frame_nr * 4096u);
    if (setsockopt(s.get(), SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) != 0)
      setsockopt(s.get(), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  } else {
    // The frame's status (unfinished checksum, VLAN tag) and length come as a control message.
    setopt(SOL_PACKET, PACKET_AUXDATA, &one, sizeof one, "setsockopt(PACKET_AUXDATA)");
    const int buf = 8 << 20;
    // Root may exceed rmem_max/wmem_max; fall back to the capped option otherwise.
    if (setsockopt(s.get(), SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) != 0)
      setsockopt(s.get(), SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    if (setsockopt(s.get(), SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof buf) != 0)
      setsockopt(s.get(), SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
  }
  // From here on the Link owns the mapping; a throw below unmaps it through the Link destructor.
  Napi::Object obj = Link::Create(env);
  Link* link = Link::Unwrap(obj);
  link->ring = ring;
  link->kind = mode == "ring" ? LinkKind::kRawRing : LinkKind::kRawMmsg;
  link->zeroCopy = zeroCopy;

  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(ipip.empty() ? ETH_P_ALL : ETH_P_IP);
  sll.sll_ifindex = ifindex;
  if (bind(s.get(), reinterpret_cast<struct sockaddr*>(&sll), sizeof sll) != 0)
    ThrowErrno(env, "socket", "bind", errno, "packet socket on " + ifname);

  if (fanoutGroup >= 0) {
    // Members are numbered in the order they join: the program's result is that index. Our own
    // transmissions stay out of the group where the kernel can (6.10+: the socket's
    // PACKET_IGNORE_OUTGOING does not apply to a fanout group); elsewhere the MAC filter drops them.
    int arg = static_cast<int>(fanoutGroup) | ((PACKET_FANOUT_CBPF | PACKET_FANOUT_FLAG_IGNORE_OUTGOING) << 16);
    if (setsockopt(s.get(), SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) != 0) {
      arg = static_cast<int>(fanoutGroup) | (PACKET_FANOUT_CBPF << 16);
      if (setsockopt(s.get(), SOL_PACKET, PACKET_FANOUT, &arg, sizeof arg) != 0)
        ThrowErrno(env, "fanout", "setsockopt(PACKET_FANOUT)", errno, "packet socket on " + ifname);
    }
    SetFanoutData(env, s.get(), fanoutProg.data(), fanoutProg.size(), ifname);
  }

  // Extra addresses: ask the device to accept them. Unicast ones with PACKET_MR_UNICAST
  // (promiscuous if it has no filter), group ones (low bit of the first octet) with
  // PACKET_MR_MULTICAST (a NIC filtering multicast passes them). Memberships end with the socket.
  for (size_t i = 0; i < extra.size(); i += 6) {
    if (memcmp(extra.data() + i, mac, 6) == 0) continue;
    struct packet_mreq mr;
    memset(&mr, 0, sizeof mr);
    mr.mr_ifindex = ifindex;
    mr.mr_type = (extra[i] & 1) != 0 ? PACKET_MR_MULTICAST : PACKET_MR_UNICAST;
    mr.mr_alen = 6;
    memcpy(mr.mr_address, extra.data() + i, 6);
    setopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr, "setsockopt(PACKET_ADD_MEMBERSHIP)");
  }

  link->name = ifname;
  link->ifindex = ifindex;
  memcpy(link->mac, mac, 6);
  link->mtu = mtu;
  link->created = false;
  link->fd = s.release();
  link->Publish();
  return obj;
}

}  // namespace lvsio
