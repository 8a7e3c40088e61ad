// One open link (a TAP file descriptor, an AF_PACKET or an AF_XDP socket) as a JS object.
//
// The data path is a few calls, each one crossing from JS for a whole batch:
//   rx(slab, off, len, start, max, slotSize, headroom) -> frames read (or -errno)
//   rxView(off, len, start, max)                      -> frames left in the RX ring (ring mode)
//   tx(slab, off, len, egress, count, linkId)          -> frames queued to the kernel
//   release()                                          -> hand the frames rxView gave back
// rx reads frames straight into (or copies them from the PACKET_MMAP ring into) the caller's slab
// at slot i: offset i*slotSize + headroom. rxView copies nothing: it sets off[i]/len[i] to where
// each frame lies in the RX ring, which JS sees as the external ArrayBuffer `ring` (published on
// the object), and keeps those ring frames from the kernel until release() or the next rxView
// that starts a batch (start 0). An AF_XDP link publishes its whole UMEM as `ring` the same
// way, and its tx() sends the frames rxView handed out by descriptor (xdp.h).
// Nothing is allocated per frame or per batch.
#pragma once

#include <napi.h>
#include <uv.h>

#include <linux/if_packet.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <vector>

namespace lvsio {

// Zero-copy ring layout (rawsock.cc sets it up, Link::RxRingView relies on it). PACKET_RESERVE
// kRingReserve puts every frame at least kRingHeadroom + 4 bytes after the tpacket2_hdr (room to
// prepend an IPIP header, as a FrameBatch slot's HEADROOM, plus a VLAN tag put back), and the
// ring frame is long enough for kRingTailroom bytes after the largest frame (PROXY protocol).
constexpr uint32_t kRingReserve = 64;
constexpr uint32_t kRingHeadroom = 64;  // = HEADROOM in src/datapath/io/batch.ts
constexpr uint32_t kRingTailroom = 256;

enum class LinkKind { kTap, kTun, kRawRing, kRawMmsg, kXdp };

class Xsk;  // xdp.h

// Counter slots, in the order stats() writes them into a Float64Array.
enum StatSlot {
  kRxPackets = 0,
  kRxBytes,
  kTxPackets,
  kTxBytes,
  kRxDropped,   // all receive-side losses: truncated + kernel drops
  kTxDropped,   // frames we could not hand to the kernel (EAGAIN, full TX ring, errors, bad length)
  kRxTruncated, // frames longer than the slot or the ring frame (e.g. GSO super-packets on veth)
  kKernelDrops, // ring/socket drops (PACKET_STATISTICS) or TAP queue drops (IFLA_STATS64 tx_dropped)
  kLastErrno,   // last hard error seen by rx/tx/poll (0 = none)
  kCsumPartial, // AF_PACKET frames flagged TP_STATUS_CSUMNOTREADY (checksum left to offload)
  kCsumFixed,   // ... of which we completed the TCP/UDP checksum before handing them on
  kRxGso,       // frames longer than MTU + 18: GSO/TSO super-frames from a local sender (dropped)
  kRxCopied,    // AF_XDP: frames copied out of the UMEM into a batch's slab (rx, not rxView)
  kTxCopied,    // AF_XDP: frames copied into a UMEM chunk to be sent (from a slab or another link)
  kTxInPlace,   // AF_XDP: frames sent by descriptor from where they were received (no copy)
  kStatCount
};

// The PACKET_MMAP mapping, shared by the Link and (when the ring is exposed to JS) the external
// ArrayBuffer over its RX part: unmapped when both have let go (the Link on close, the
// ArrayBuffer when it is collected), so JS can never reach unmapped memory.
struct RingMap {
  uint8_t* map = nullptr;
  size_t len = 0;
  int refs = 1;
  void Unmap();
  void Unref();
};

struct RingConfig {
  RingMap* shared = nullptr;  // owns the mapping
  uint8_t* map = nullptr;
  size_t mapLen = 0;
  uint8_t* rx = nullptr;
  uint32_t rxFrames = 0, rxFrameSize = 0, rxHead = 0;
  // Frames handed to JS by rxView and not yet given back: rxHeld of them, from rxRelease on.
  uint32_t rxRelease = 0, rxHeld = 0;
  uint8_t* tx = nullptr;
  uint32_t txFrames = 0, txFrameSize = 0, txHead = 0;
};

class Link : public Napi::ObjectWrap<Link> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Create(Napi::Env env);  // an empty Link, filled by the open functions
  explicit Link(const Napi::CallbackInfo& info);
  ~Link() override;

  // Filled by openTap/openRaw before the object is handed to JS.
  LinkKind kind = LinkKind::kTap;
  int fd = -1;
  int nlfd = -1;  // rtnetlink socket in the link's namespace (TAP queue-drop counter)
  std::string name;
  int ifindex = 0;
  uint8_t mac[6] = {0};
  int mtu = 0;
  bool created = false;
  RingConfig ring;
  Xsk* xsk = nullptr;  // kXdp: the AF_XDP socket, UMEM, rings and XDP program (owned; fd is its socket)
  uint64_t kernelDropBase = 0;
  bool zeroCopy = false;  // publish the RX ring (AF_XDP: the UMEM) to JS as an external ArrayBuffer (rxView)
  void Publish();  // copy the fields above onto the JS object as read-only properties
  bool RingPublished() const { return ringAb_ != nullptr; }

 private:
  Napi::Value Rx(const Napi::CallbackInfo& info);
  Napi::Value RxView(const Napi::CallbackInfo& info);
  Napi::Value Release(const Napi::CallbackInfo& info);
  Napi::Value Tx(const Napi::CallbackInfo& info);
  Napi::Value Poll(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value SetFanoutProgram(const Napi::CallbackInfo& info);

  int32_t RxTap(uint8_t* slab, uint32_t* off, uint32_t* len, uint32_t start, uint32_t max, uint32_t slot,
                uint32_t headroom);
  int32_t RxRing(uint8_t* slab, uint32_t* off, uint32_t* len, uint32_t start, uint32_t max, uint32_t slot,
                 uint32_t headroom);
  int32_t RxRingView(uint32_t* off, uint32_t* len, uint32_t start, uint32_t max);
  void ReleaseHeld();
  int32_t RxMmsg(uint8_t* slab, uint32_t* off, uint32_t* len, uint32_t start, uint32_t max, uint32_t slot,
                 uint32_t headroom);
  uint32_t TxTap(uint8_t* slab, size_t slabLen, const uint32_t* off, const uint32_t* len, const int16_t* egress,
                 uint32_t count, int16_t linkId);
  uint32_t TxRing(uint8_t* slab, size_t slabLen, const uint32_t* off, const uint32_t* len, const int16_t* egress,
                  uint32_t count, int16_t linkId);
  uint32_t TxMmsg(uint8_t* slab, size_t slabLen, const uint32_t* off, const uint32_t* len, const int16_t* egress,
                  uint32_t count, int16_t linkId);
  bool FlushTxRing();
  // Longer than any frame the wire could carry: a GSO/TSO super-frame from a local sender.
  bool IsGso(uint32_t frameLen) const { return frameLen > static_cast<uint32_t>(mtu) + 14 + 4; }
  void RefreshKernelDrops();
  void StopPoll();
  void CloseAll();
  static void OnPoll(uv_poll_t* handle, int status, int events);

  uint64_t st_[kStatCount] = {0};
  // TX ring requests the kernel has not taken yet (send() said ENOBUFS/EAGAIN: the device or its
  // queue was full; the kernel keeps the head frame and retries it on the next send()).
  bool txBacklog_ = false;
  uv_timer_t* retry_ = nullptr;  // retries the flush every millisecond while there is a backlog
  void NoteBacklog();
  static void OnRetry(uv_timer_t* t);
  // recvmmsg/sendmmsg scratch, sized once; rxCtl_ holds one PACKET_AUXDATA cmsg per message.
  std::vector<struct mmsghdr> msgs_;
  std::vector<struct iovec> iovs_;
  std::vector<uint8_t> rxCtl_;
  // Event-loop integration.
  napi_env env_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  napi_ref cb_ = nullptr;
  napi_async_context actx_ = nullptr;
  bool selfRef_ = false;
  // Weak reference to the external ArrayBuffer over the RX ring (detached on close).
  napi_ref ringAb_ = nullptr;
};

}  // namespace lvsio
