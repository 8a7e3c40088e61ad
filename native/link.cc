#include "link.h"

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "addon.h"
#include "common.h"
#include "csum.h"
#include "xdp.h"

namespace lvsio {

namespace {

constexpr uint32_t kMaxMsgs = 1024;  // recvmmsg/sendmmsg vector length per system call
constexpr uint32_t kEthHdr = 14;
// Room for one PACKET_AUXDATA control message per received frame (mmsg mode).
constexpr size_t kAuxSpace = CMSG_SPACE(sizeof(struct tpacket_auxdata));

// Typed-array argument: pointer and element count, with the element type checked.
template <typename T>
T* TypedArg(napi_env env, napi_value v, napi_typedarray_type want, size_t* length, const char* what) {
  napi_typedarray_type type;
  void* data = nullptr;
  if (napi_get_typedarray_info(env, v, &type, length, &data, nullptr, nullptr) != napi_ok || type != want) {
    throw Napi::TypeError::New(env, std::string(what) + " has the wrong type");
  }
  return static_cast<T*>(data);
}

uint32_t U32Arg(napi_env env, napi_value v, const char* what) {
  uint32_t out;
  if (napi_get_value_uint32(env, v, &out) != napi_ok) throw Napi::TypeError::New(env, std::string(what) + " must be a number");
  return out;
}

int32_t I32Arg(napi_env env, napi_value v, const char* what) {
  int32_t out;
  if (napi_get_value_int32(env, v, &out) != napi_ok) throw Napi::TypeError::New(env, std::string(what) + " must be a number");
  return out;
}

inline void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}

// The external ArrayBuffer over the RX ring was collected (or its environment is going away).
void RingFinalize(napi_env /*env*/, void* /*data*/, void* hint) { static_cast<RingMap*>(hint)->Unref(); }

}  // namespace

void RingMap::Unmap() {
  if (map != nullptr) munmap(map, len);
  map = nullptr;
}

void RingMap::Unref() {
  if (--refs > 0) return;
  Unmap();
  delete this;
}

Napi::Function Link::Define(Napi::Env env) {
  return DefineClass(env, "Link",
                     {
                         InstanceMethod<&Link::Rx>("rx"),
                         InstanceMethod<&Link::RxView>("rxView"),
                         InstanceMethod<&Link::Release>("release"),
                         InstanceMethod<&Link::Tx>("tx"),
                         InstanceMethod<&Link::Poll>("poll"),
                         InstanceMethod<&Link::Stats>("stats"),
                         InstanceMethod<&Link::Close>("close"),
                         InstanceMethod<&Link::SetFanoutProgram>("setFanoutProgram"),
                     });
}

Napi::Object Link::Create(Napi::Env env) {
  AddonData* data = env.GetInstanceData<AddonData>();
  return data->linkCtor.New({data->token.Value()});
}

Link::Link(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Link>(info) {
  AddonData* data = info.Env().GetInstanceData<AddonData>();
  if (info.Length() < 1 || !info[0].StrictEquals(data->token.Value())) {
    throw Napi::TypeError::New(info.Env(), "Link objects are made by openTap()/openRaw()");
  }
  env_ = info.Env();
}

Link::~Link() { CloseAll(); }

void Link::Publish() {
  Napi::Env env = Env();
  Napi::Object self = Value();
  auto ro = [&](const char* key, Napi::Value v) {
    self.DefineProperty(Napi::PropertyDescriptor::Value(key, v, napi_enumerable));
  };
  ro("name", Napi::String::New(env, name));
  ro("ifindex", Napi::Number::New(env, ifindex));
  Napi::Uint8Array m = Napi::Uint8Array::New(env, 6);
  memcpy(m.Data(), mac, 6);
  ro("mac", m);
  ro("mtu", Napi::Number::New(env, mtu));
  ro("created", Napi::Boolean::New(env, created));
  ro("fd", Napi::Number::New(env, fd));
  const char* k = kind == LinkKind::kTap   ? "tap"
                  : kind == LinkKind::kTun ? "tun"
                  : kind == LinkKind::kRawRing ? "ring"
                  : kind == LinkKind::kXdp     ? "xdp"
                                               : "mmsg";
  ro("kind", Napi::String::New(env, k));
  ro("rxRingFrames", Napi::Number::New(env, ring.rxFrames));
  ro("txRingFrames", Napi::Number::New(env, ring.txFrames));
  ro("ringFrameSize", Napi::Number::New(env, ring.rxFrameSize));
  // Zero-copy: the RX ring as an ArrayBuffer over the mapping itself (no copy, no V8 allocation).
  // It takes a reference on the mapping, given back by its finalizer; a V8 build with the memory
  // sandbox refuses external memory (napi_no_external_buffers_allowed): then `ring` is null and JS
  // uses the copying rx().
  napi_value ab = nullptr;
  if ((kind == LinkKind::kRawRing || kind == LinkKind::kXdp) && zeroCopy && ring.shared != nullptr) {
    ring.shared->refs++;
    // AF_PACKET: the RX part of the mapping; AF_XDP: the whole UMEM (RX and TX chunks are one pool).
    const size_t rxLen =
        kind == LinkKind::kXdp ? ring.shared->len : static_cast<size_t>(ring.rxFrames) * ring.rxFrameSize;
    if (napi_create_external_arraybuffer(env, ring.rx, rxLen, RingFinalize, ring.shared, &ab) != napi_ok) {
      ring.shared->refs--;
      ab = nullptr;
      bool pending = false;
      if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
        napi_value exc;
        napi_get_and_clear_last_exception(env, &exc);
      }
    } else {
      napi_create_reference(env, ab, 0, &ringAb_);
    }
  }
  ro("ring", ab != nullptr ? Napi::Value(env, ab) : env.Null());
  if (kind == LinkKind::kRawMmsg) {
    msgs_.resize(kMaxMsgs);
    iovs_.resize(kMaxMsgs);
    rxCtl_.assign(kMaxMsgs * kAuxSpace, 0);
  }
  // Start from zero: drops an attached persistent TAP saw before we opened it are not ours.
  RefreshKernelDrops();
  kernelDropBase = st_[kKernelDrops];
  st_[kKernelDrops] = 0;
  st_[kRxDropped] = 0;
}

// ---------------------------------------------------------------------------------------------
// Receive

Napi::Value Link::Rx(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  if (info.Length() < 7) throw Napi::TypeError::New(env, "rx(slab, off, len, start, max, slotSize, headroom)");
  size_t slabLen, offLen, lenLen;
  uint8_t* slab = TypedArg<uint8_t>(env, info[0], napi_uint8_array, &slabLen, "slab");
  uint32_t* off = TypedArg<uint32_t>(env, info[1], napi_uint32_array, &offLen, "off");
  uint32_t* len = TypedArg<uint32_t>(env, info[2], napi_uint32_array, &lenLen, "len");
  uint32_t start = U32Arg(env, info[3], "start");
  uint32_t max = U32Arg(env, info[4], "max");
  uint32_t slot = U32Arg(env, info[5], "slotSize");
  uint32_t headroom = U32Arg(env, info[6], "headroom");
  if (slot <= headroom + kEthHdr) throw Napi::RangeError::New(env, "slotSize must exceed headroom + 14");
  uint64_t end = static_cast<uint64_t>(start) + max;
  if (end > offLen || end > lenLen || end * slot > slabLen) {
    throw Napi::RangeError::New(env, "rx: start + max exceeds the batch");
  }
  int32_t n;
  if (fd < 0) {
    n = -EBADF;
  } else if (max == 0) {
    n = 0;
  } else {
    switch (kind) {
      case LinkKind::kTap:
      case LinkKind::kTun:
        n = RxTap(slab, off, len, start, max, slot, headroom);
        break;
      case LinkKind::kRawRing:
        n = RxRing(slab, off, len, start, max, slot, headroom);
        break;
      case LinkKind::kXdp:
        n = xsk->Rx(slab, off, len, start, max, slot, headroom, st_);
        break;
      default:
        n = RxMmsg(slab, off, len, start, max, slot, headroom);
        break;
    }
  }
  napi_value out;
  napi_create_int32(env, n, &out);
  return Napi::Value(env, out);
}

int32_t Link::RxTap(uint8_t* slab, uint32_t* off, uint32_t* len, uint32_t start, uint32_t max, uint32_t slot,
                    uint32_t headroom) {
  const uint32_t room = slot - headroom;
  uint32_t k = 0;
  while (k < max) {
    const uint32_t i = start + k;
    const uint32_t o = i * slot + headroom;
    ssize_t r = read(fd, slab + o, room);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      st_[kLastErrno] = errno;
      if (k == 0) return -errno;
      break;
    }
    if (r < static_cast<ssize_t>(kEthHdr) || r >= static_cast<ssize_t>(room)) {
      // A frame that filled the whole slot may have been cut short: never pass it on.
      st_[kRxDropped]++;
      if (r >= static_cast<ssize_t>(room)) st_[kRxTruncated]++;
      continue;
    }
    off[i] = o;
    len[i] = static_cast<uint32_t>(r);
    st_[kRxPackets]++;
    st_[kRxBytes] += static_cast<uint64_t>(r);
    k++;
  }
  return static_cast<int32_t>(k);
}

int32_t Link::RxRing(uint8_t* slab, uint32_t* off, uint32_t* len, uint32_t start, uint32_t max, uint32_t slot,
                     uint32_t headroom) {
  const uint32_t room = slot - headroom;
  uint32_t k = 0;
  while (k < max) {
    auto* h = reinterpret_cast<struct tpacket2_hdr*>(ring.rx + static_cast<size_t>(ring.rxHead) * ring.rxFrameSize);
    uint32_t status = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
    if (!(status & TP_STATUS_USER)) break;
    const uint8_t* data = reinterpret_cast<const uint8_t*>(h) + h->tp_mac;
    const uint32_t snap = h->tp_snaplen;
    const bool vlan = (status & TP_STATUS_VLAN_VALID) != 0;
    const uint32_t outLen = snap + (vlan ? 4 : 0);
    if (snap < h->tp_len || outLen > room || snap < kEthHdr) {
      st_[kRxDropped]++;
      if (snap >= kEthHdr) st_[kRxTruncated]++;
      if (IsGso(h->tp_len)) st_[kRxGso]++;
    } else {
      const uint32_t i = start + k;
      const uint32_t o = i * slot + headroom;
      uint8_t* dst = slab + o;
      if (vlan) {
        // The tag was taken off by VLAN acceleration: put it back so the frame is as on the wire.
        const uint16_t tpid = (status & TP_STATUS_VLAN_TPID_VALID) && h->tp_vlan_tpid ? h->tp_vlan_tpid : 0x8100;
        memcpy(dst, data, 12);
        PutBe16(dst + 12, tpid);
        PutBe16(dst + 14, h->tp_vlan_tci);
        memcpy(dst + 16, data + 12, snap - 12);
      } else {
        memcpy(dst, data, snap);
      }
      if (status & TP_STATUS_CSUMNOTREADY) {
        st_[kCsumPartial]++;
        if (FinishL4Checksum(dst, outLen)) st_[kCsumFixed]++;
      }
      off[i] = o;
      len[i] = outLen;
      st_[kRxPackets]++;
      st_[kRxBytes] += outLen;
      k++;
    }
    __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    ring.rxHead = ring.rxHead + 1 == ring.rxFrames ? 0 : ring.rxHead + 1;
  }
  return static_cast<int32_t>(k);
}

// Give the kernel back the ring frames rxView handed out (in ring order, as it walks the ring).
void Link::ReleaseHeld() {
  while (ring.rxHeld > 0) {
    auto* h = reinterpret_cast<struct tpacket2_hdr*>(ring.rx + static_cast<size_t>(ring.rxRelease) * ring.rxFrameSize);
    __atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
    ring.rxRelease = ring.rxRelease + 1 == ring.rxFrames ? 0 : ring.rxRelease + 1;
    ring.rxHeld--;
  }
}

Napi::Value Link::RxView(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  if (info.Length() < 4) throw Napi::TypeError::New(env, "rxView(off, len, start, max)");
  size_t offLen, lenLen;
  uint32_t* off = TypedArg<uint32_t>(env, info[0], napi_uint32_array, &offLen, "off");
  uint32_t* len = TypedArg<uint32_t>(env, info[1], napi_uint32_array, &lenLen, "len");
  uint32_t start = U32Arg(env, info[2], "start");
  uint32_t max = U32Arg(env, info[3], "max");
  uint64_t end = static_cast<uint64_t>(start) + max;
  if (end > offLen || end > lenLen) throw Napi::RangeError::New(env, "rxView: start + max exceeds the batch");
  int32_t n;
  const bool lent = kind == LinkKind::kXdp ? xsk != nullptr && xsk->view && xsk->pool->viewable : ringAb_ != nullptr;
  if (fd < 0 || (kind != LinkKind::kRawRing && kind != LinkKind::kXdp) || !lent) {
    n = fd < 0 ? -EBADF : -EOPNOTSUPP;
  } else if (max == 0) {
    n = 0;
  } else if (kind == LinkKind::kXdp) {
    n = xsk->RxView(off, len, start, max, st_);
  } else {
    n = RxRingView(off, len, start, max);
  }
  napi_value out;
  napi_create_int32(env, n, &out);
  return Napi::Value(env, out);
}

Napi::Value Link::Release(const Napi::CallbackInfo& info) {
  if (fd >= 0 && kind == LinkKind::kRawRing) ReleaseHeld();
  if (fd >= 0 && kind == LinkKind::kXdp) xsk->Release();
  return info.Env().Undefined();
}

// Zero-copy receive: each ready frame stays where the kernel wrote it. off[i] is its offset in
// the RX ring (the `ring` ArrayBuffer); the frame keeps its ring slot until release() (or the
// next rxView with start 0). The ring stops receiving when all its frames are held: at most one
// batch (capacity frames) is, of 2048 by default. The
// socket's PACKET_RESERVE leaves kRingHeadroom bytes in front of the frame (IPIP encapsulation,
// a VLAN tag put back) and the ring frame is long enough for tail room after the largest frame.
int32_t Link::RxRingView(uint32_t* off, uint32_t* len, uint32_t start, uint32_t max) {
  // A batch starting afresh (start 0) is done with what it held: only one batch at a time views
  // a link's ring. Appending to it (start > 0) keeps the frames it already has.
  if (start == 0) ReleaseHeld();
  constexpr uint32_t kHdrEnd = TPACKET_ALIGN(sizeof(struct tpacket2_hdr));
  const uint32_t fsize = ring.rxFrameSize;
  uint32_t k = 0;
  // Stop at max, at a frame the kernel still owns, or when every ring frame is held (the head
  // has come round to frames this batch already has).
  while (k < max && ring.rxHeld < ring.rxFrames) {
    const size_t base = static_cast<size_t>(ring.rxHead) * fsize;
    auto* h = reinterpret_cast<struct tpacket2_hdr*>(ring.rx + base);
    uint32_t status = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
    if (!(status & TP_STATUS_USER)) break;
    // Ours until released, good frame or not.
    ring.rxHead = ring.rxHead + 1 == ring.rxFrames ? 0 : ring.rxHead + 1;
    ring.rxHeld++;
    const uint32_t mac = h->tp_mac;
    const uint32_t snap = h->tp_snaplen;
    const bool vlan = (status & TP_STATUS_VLAN_VALID) != 0;
    if (snap < h->tp_len || snap < kEthHdr || mac < kHdrEnd + kRingHeadroom + 4 || mac + snap > fsize) {
      st_[kRxDropped]++;
      if (snap >= kEthHdr) st_[kRxTruncated]++;
      if (IsGso(h->tp_len)) st_[kRxGso]++;
      continue;
    }
    uint32_t o = static_cast<uint32_t>(base) + mac;
    uint32_t n = snap;
    uint8_t* frame = ring.rx + o;
    if (vlan) {
      // Put back the tag VLAN acceleration took off: the addresses move 4 bytes to the front.
      const uint16_t tpid = (status & TP_STATUS_VLAN_TPID_VALID) && h->tp_vlan_tpid ? h->tp_vlan_tpid : 0x8100;
      memmove(frame - 4, frame, 12);
      frame -= 4;
      o -= 4;
      n += 4;
      PutBe16(frame + 12, tpid);
      PutBe16(frame + 14, h->tp_vlan_tci);
    }
    if (status & TP_STATUS_CSUMNOTREADY) {
      st_[kCsumPartial]++;
      if (FinishL4Checksum(frame, n)) st_[kCsumFixed]++;
    }
    const uint32_t i = start + k;
    off[i] = o;
    len[i] = n;
    st_[kRxPackets]++;
    st_[kRxBytes] += n;
    k++;
  }
  return static_cast<int32_t>(k);
}

int32_t Link::RxMmsg(uint8_t* slab, uint32_t* off, uint32_t* len, uint32_t start, uint32_t max, uint32_t slot,
                     uint32_t headroom) {
  const uint32_t room = slot - headroom;
  uint32_t k = 0;
  while (k < max) {
    const uint32_t want = max - k < kMaxMsgs ? max - k : kMaxMsgs;
    for (uint32_t j = 0; j < want; j++) {
      iovs_[j].iov_base = slab + static_cast<size_t>(start + k + j) * slot + headroom;
      iovs_[j].iov_len = room;
      memset(&msgs_[j].msg_hdr, 0, sizeof(struct msghdr));
      msgs_[j].msg_hdr.msg_iov = &iovs_[j];
      msgs_[j].msg_hdr.msg_iovlen = 1;
      msgs_[j].msg_hdr.msg_control = rxCtl_.data() + j * kAuxSpace;
      msgs_[j].msg_hdr.msg_controllen = kAuxSpace;
    }
    int r = recvmmsg(fd, msgs_.data(), want, MSG_DONTWAIT, nullptr);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      st_[kLastErrno] = errno;
      if (k == 0) return -errno;
      break;
    }
    // Keep the good frames contiguous: a dropped one is overwritten by the next good one.
    for (int j = 0; j < r; j++) {
      uint32_t n = msgs_[j].msg_len;
      // PACKET_AUXDATA: the status (checksum, VLAN) and the frame's length before truncation.
      const struct tpacket_auxdata* aux = nullptr;
      for (struct cmsghdr* c = CMSG_FIRSTHDR(&msgs_[j].msg_hdr); c != nullptr;
           c = CMSG_NXTHDR(&msgs_[j].msg_hdr, c)) {
        if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct tpacket_auxdata)))
          aux = reinterpret_cast<const struct tpacket_auxdata*>(CMSG_DATA(c));
      }
      const uint32_t status = aux != nullptr ? aux->tp_status : 0;
      const bool vlan = (status & TP_STATUS_VLAN_VALID) != 0;
      if ((msgs_[j].msg_hdr.msg_flags & MSG_TRUNC) || n < kEthHdr || (vlan && n + 4 > room)) {
        st_[kRxDropped]++;
        if (n >= kEthHdr) st_[kRxTruncated]++;
        if (aux != nullptr && IsGso(aux->tp_len)) st_[kRxGso]++;
        continue;
      }
      const uint32_t i = start + k;
      const uint32_t o = i * slot + headroom;
      uint8_t* src = static_cast<uint8_t*>(iovs_[j].iov_base);
      uint8_t* dst = slab + o;
      if (vlan) {
        // As in ring mode: put the tag VLAN acceleration took off back into the frame.
        const uint16_t tpid =
            (status & TP_STATUS_VLAN_TPID_VALID) && aux->tp_vlan_tpid ? aux->tp_vlan_tpid : 0x8100;
        memmove(dst + 16, src + 12, n - 12);
        if (src != dst) memmove(dst, src, 12);
        PutBe16(dst + 12, tpid);
        PutBe16(dst + 14, aux->tp_vlan_tci);
        n += 4;
      } else if (src != dst) {
        memmove(dst, src, n);
      }
      if (status & TP_STATUS_CSUMNOTREADY) {
        st_[kCsumPartial]++;
        if (FinishL4Checksum(dst, n)) st_[kCsumFixed]++;
      }
      off[i] = o;
      len[i] = n;
      st_[kRxPackets]++;
      st_[kRxBytes] += n;
      k++;
    }
    if (static_cast<uint32_t>(r) < want) break;  // socket drained
  }
  return static_cast<int32_t>(k);
}

// ---------------------------------------------------------------------------------------------
// Transmit

Napi::Value Link::Tx(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  if (info.Length() < 6) throw Napi::TypeError::New(env, "tx(slab, off, len, egress, count, linkId)");
  size_t slabLen, offLen, lenLen, egLen;
  uint8_t* slab = TypedArg<uint8_t>(env, info[0], napi_uint8_array, &slabLen, "slab");
  const uint32_t* off = TypedArg<uint32_t>(env, info[1], napi_uint32_array, &offLen, "off");
  const uint32_t* len = TypedArg<uint32_t>(env, info[2], napi_uint32_array, &lenLen, "len");
  const int16_t* egress = TypedArg<int16_t>(env, info[3], napi_int16_array, &egLen, "egress");
  uint32_t count = U32Arg(env, info[4], "count");
  int32_t linkId = I32Arg(env, info[5], "linkId");
  if (count > offLen || count > lenLen || count > egLen) throw Napi::RangeError::New(env, "tx: count exceeds the batch");
  uint32_t sent = 0;
  if (fd >= 0 && count > 0) {
    const auto id = static_cast<int16_t>(linkId);
    switch (kind) {
      case LinkKind::kTap:
      case LinkKind::kTun:
        sent = TxTap(slab, slabLen, off, len, egress, count, id);
        break;
      case LinkKind::kRawRing:
        sent = TxRing(slab, slabLen, off, len, egress, count, id);
        break;
      case LinkKind::kXdp:
        sent = xsk->Tx(slab, slabLen, off, len, egress, count, id, st_);
        // One kick for the batch (and for descriptors an earlier kick left behind).
        if (sent > 0 || txBacklog_) {
          txBacklog_ = !xsk->Kick(st_);
          if (txBacklog_) NoteBacklog();
        }
        break;
      default:
        sent = TxMmsg(slab, slabLen, off, len, egress, count, id);
        break;
    }
  } else if (fd < 0) {
    for (uint32_t i = 0; i < count; i++)
      if (egress[i] == linkId) st_[kTxDropped]++;
  }
  napi_value out;
  napi_create_uint32(env, sent, &out);
  return Napi::Value(env, out);
}

uint32_t Link::TxTap(uint8_t* slab, size_t slabLen, const uint32_t* off, const uint32_t* len, const int16_t* egress,
                     uint32_t count, int16_t linkId) {
  uint32_t sent = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (egress[i] != linkId) continue;
    const uint32_t o = off[i], n = len[i];
    if (n < kEthHdr || static_cast<uint64_t>(o) + n > slabLen) {
      st_[kTxDropped]++;
      continue;
    }
    ssize_t w;
    do {
      w = write(fd, slab + o, n);
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
      st_[kTxDropped]++;
      if (errno != EAGAIN) st_[kLastErrno] = errno;
      continue;
    }
    st_[kTxPackets]++;
    st_[kTxBytes] += n;
    sent++;
  }
  return sent;
}

// Ask the kernel to send every frame marked TP_STATUS_SEND_REQUEST. With MSG_DONTWAIT the call
// does not wait for completions; frames it could not send stay queued for the next flush.
bool Link::FlushTxRing() {
  for (;;) {
    ssize_t r = send(fd, nullptr, 0, MSG_DONTWAIT);
    if (r >= 0) return true;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != ENOBUFS) st_[kLastErrno] = errno;
    return false;
  }
}

uint32_t Link::TxRing(uint8_t* slab, size_t slabLen, const uint32_t* off, const uint32_t* len, const int16_t* egress,
                      uint32_t count, int16_t linkId) {
  // Data starts right after the aligned tpacket2_hdr (no PACKET_TX_HAS_OFF).
  constexpr uint32_t kDataOff = TPACKET_ALIGN(sizeof(struct tpacket2_hdr));
  const uint32_t maxLen = static_cast<uint32_t>(mtu) + kEthHdr + 4;
  uint32_t queued = 0, sent = 0;
  bool flushed = false;
  // Requests an earlier send() left behind (EAGAIN: socket send buffer full) go first.
  if (txBacklog_) {
    txBacklog_ = !FlushTxRing();
    flushed = true;
  }
  for (uint32_t i = 0; i < count; i++) {
    if (egress[i] != linkId) continue;
    const uint32_t o = off[i], n = len[i];
    if (n < kEthHdr || n > maxLen || n > ring.txFrameSize - kDataOff || static_cast<uint64_t>(o) + n > slabLen) {
      st_[kTxDropped]++;
      continue;
    }
    auto* h = reinterpret_cast<struct tpacket2_hdr*>(ring.tx + static_cast<size_t>(ring.txHead) * ring.txFrameSize);
    uint32_t status = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
    if (status != TP_STATUS_AVAILABLE && !flushed) {
      // The ring is full (of our requests, or of frames the kernel is still sending): push out
      // what is queued once, and look again.
      txBacklog_ = !FlushTxRing();
      flushed = true;
      queued = 0;
      status = __atomic_load_n(&h->tp_status, __ATOMIC_ACQUIRE);
    }
    if (status != TP_STATUS_AVAILABLE) {
      // Still owned by the kernel. It walks the ring in order, so we may not skip this slot:
      // drop the frame.
      st_[kTxDropped]++;
      continue;
    }
    memcpy(reinterpret_cast<uint8_t*>(h) + kDataOff, slab + o, n);
    h->tp_len = n;
    __atomic_store_n(&h->tp_status, TP_STATUS_SEND_REQUEST, __ATOMIC_RELEASE);
    ring.txHead = ring.txHead + 1 == ring.txFrames ? 0 : ring.txHead + 1;
    st_[kTxPackets]++;
    st_[kTxBytes] += n;
    queued++;
    sent++;
  }
  if (queued > 0) txBacklog_ = !FlushTxRing();
  if (txBacklog_) NoteBacklog();
  return sent;
}

// Frames left in the TX ring must not wait for the next tx() call, which on a quiet link may
// never come: retry from a timer. The timer does not keep the event loop alive.
void Link::NoteBacklog() {
  if (retry_ == nullptr) {
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env_, &loop) != napi_ok || loop == nullptr) return;
    retry_ = new uv_timer_t;
    uv_timer_init(loop, retry_);
    retry_->data = this;
    uv_unref(reinterpret_cast<uv_handle_t*>(retry_));
  }
  if (!uv_is_active(reinterpret_cast<uv_handle_t*>(retry_))) uv_timer_start(retry_, &Link::OnRetry, 1, 1);
}

void Link::OnRetry(uv_timer_t* t) {
  Link* self = static_cast<Link*>(t->data);
  if (self->fd < 0 || !self->txBacklog_ ||
      (self->kind == LinkKind::kXdp ? self->xsk->Kick(self->st_) : self->FlushTxRing())) {
    self->txBacklog_ = false;
    uv_timer_stop(t);
  }
}

uint32_t Link::TxMmsg(uint8_t* slab, size_t slabLen, const uint32_t* off, const uint32_t* len, const int16_t* egress,
                      uint32_t count, int16_t linkId) {
  uint32_t sent = 0;
  uint32_t i = 0;
  while (i < count) {
    uint32_t n = 0;
    for (; i < count && n < kMaxMsgs; i++) {
      if (egress[i] != linkId) continue;
      const uint32_t o = off[i], l = len[i];
      if (l < kEthHdr || static_cast<uint64_t>(o) + l > slabLen) {
        st_[kTxDropped]++;
        continue;
      }
      iovs_[n].iov_base = slab + o;
      iovs_[n].iov_len = l;
      memset(&msgs_[n].msg_hdr, 0, sizeof(struct msghdr));
      msgs_[n].msg_hdr.msg_iov = &iovs_[n];
      msgs_[n].msg_hdr.msg_iovlen = 1;
      n++;
    }
    uint32_t pos = 0;
    while (pos < n) {
      int r = sendmmsg(fd, msgs_.data() + pos, n - pos, MSG_DONTWAIT);
      if (r > 0) {
        for (int j = 0; j < r; j++) st_[kTxBytes] += iovs_[pos + j].iov_len;
        st_[kTxPackets] += r;
        sent += r;
        pos += r;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
        st_[kTxDropped] += n - pos;  // socket buffer full: the rest of this batch is lost
        pos = n;
        break;
      }
      if (r < 0) st_[kLastErrno] = errno;
      st_[kTxDropped]++;  // this frame was refused (EMSGSIZE, ENETDOWN, ...): skip it
      pos++;
    }
  }
  return sent;
}

// ---------------------------------------------------------------------------------------------
// Counters

// Kernel-side losses: PACKET_STATISTICS (reset on read, so we accumulate) for AF_PACKET, and for a
// TAP the interface's tx_dropped, i.e. frames the kernel dropped because our queue was full.
void Link::RefreshKernelDrops() {
  if (fd < 0) return;
  if (kind == LinkKind::kXdp) {
    const uint64_t total = xsk->KernelDrops();
    if (total > st_[kKernelDrops] + kernelDropBase) {
      st_[kRxDropped] += total - kernelDropBase - st_[kKernelDrops];
      st_[kKernelDrops] = total - kernelDropBase;
    }
    return;
  }
  if (kind == LinkKind::kRawRing || kind == LinkKind::kRawMmsg) {
    struct tpacket_stats s;
    socklen_t sl = sizeof s;
    if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, &s, &sl) == 0) {
      st_[kKernelDrops] += s.tp_drops;
      st_[kRxDropped] += s.tp_drops;
    }
    return;
  }
  if (nlfd < 0) return;
  struct {
    struct nlmsghdr nh;
    struct ifinfomsg ifm;
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = RTM_GETLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST;
  req.nh.nlmsg_seq = 1;
  req.ifm.ifi_family = AF_UNSPEC;
  req.ifm.ifi_index = ifindex;
  if (send(nlfd, &req, sizeof req, 0) < 0) return;
  alignas(struct nlmsghdr) char buf[16384];
  ssize_t r = recv(nlfd, buf, sizeof buf, 0);
  if (r <= 0) return;
  for (auto* nh = reinterpret_cast<struct nlmsghdr*>(buf); NLMSG_OK(nh, static_cast<size_t>(r));
       nh = NLMSG_NEXT(nh, r)) {
    if (nh->nlmsg_type != RTM_NEWLINK) continue;
    auto* ifm = static_cast<struct ifinfomsg*>(NLMSG_DATA(nh));
    int alen = static_cast<int>(IFLA_PAYLOAD(nh));
    for (auto* a = IFLA_RTA(ifm); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
      if (a->rta_type != IFLA_STATS64 || RTA_PAYLOAD(a) < sizeof(struct rtnl_link_stats64)) continue;
      struct rtnl_link_stats64 s;
      memcpy(&s, RTA_DATA(a), sizeof s);
      const uint64_t total = s.tx_dropped >= kernelDropBase ? s.tx_dropped - kernelDropBase : 0;
      if (total > st_[kKernelDrops]) {
        st_[kRxDropped] += total - st_[kKernelDrops];
        st_[kKernelDrops] = total;
      }
    }
  }
}

// setFanoutProgram(program): the classic BPF program of the PACKET_FANOUT_CBPF group this
// AF_PACKET socket joined (openRaw's `fanout`), as sock_filter structs in host byte order
// (8 bytes each); it returns the index of the group member a frame goes to. It replaces the
// group's program for every member (PACKET_FANOUT_DATA). Control plane: called between batches.
Napi::Value Link::SetFanoutProgram(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (fd < 0) throw Napi::Error::New(env, "link is closed");
  if (kind != LinkKind::kRawRing && kind != LinkKind::kRawMmsg)
    throw Napi::TypeError::New(env, "setFanoutProgram: not an AF_PACKET link");
  size_t n;
  uint8_t* bytes = TypedArg<uint8_t>(env, info[0], napi_uint8_array, &n, "fanout program");
  SetFanoutData(env, fd, bytes, n, name);
  return env.Undefined();
}

Napi::Value Link::Stats(const Napi::CallbackInfo& info) {
  napi_env env = info.Env();
  size_t n;
  double* out = TypedArg<double>(env, info[0], napi_float64_array, &n, "stats array");
  RefreshKernelDrops();
  for (size_t i = 0; i < n && i < kStatCount; i++) out[i] = static_cast<double>(st_[i]);
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------
// Event loop

// Runs on the main thread from libuv when the descriptor is readable (level-triggered: if JS
// leaves frames behind, it is called again on the next loop iteration).
void Link::OnPoll(uv_poll_t* handle, int status, int /*events*/) {
  Link* self = static_cast<Link*>(handle->data);
  if (status < 0) self->st_[kLastErrno] = static_cast<uint64_t>(-status);
  napi_env env = self->env_;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, result;
  if (self->cb_ != nullptr && napi_get_reference_value(env, self->cb_, &cb) == napi_ok && cb != nullptr) {
    napi_get_global(env, &recv);  // napi_make_callback needs an object receiver
    if (napi_make_callback(env, self->actx_, recv, cb, 0, nullptr, &result) == napi_pending_exception) {
      napi_value exc;
      napi_get_and_clear_last_exception(env, &exc);
      napi_fatal_exception(env, exc);  // an exception in the callback is an uncaught exception
    }
  }
  napi_close_handle_scope(env, scope);
}

Napi::Value Link::Poll(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || info[0].IsNull() || info[0].IsUndefined()) {
    StopPoll();
    return env.Undefined();
  }
  if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "poll(callback | null)");
  if (fd < 0) throw Napi::Error::New(env, "link is closed");
  if (cb_ != nullptr) {
    napi_delete_reference(env, cb_);
    cb_ = nullptr;
  }
  napi_create_reference(env, info[0], 1, &cb_);
  if (actx_ == nullptr) {
    napi_async_init(env, Napi::Object::New(env), Napi::String::New(env, "lvs-io:readable"), &actx_);
  }
  if (poll_ == nullptr) {
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    int r = uv_poll_init(loop, poll_, fd);
    if (r != 0) {
      delete poll_;
      poll_ = nullptr;
      throw Napi::Error::New(env, std::string("uv_poll_init: ") + uv_strerror(r));
    }
    poll_->data = this;
  }
  int r = uv_poll_start(poll_, UV_READABLE, &Link::OnPoll);
  if (r != 0) throw Napi::Error::New(env, std::string("uv_poll_start: ") + uv_strerror(r));
  if (!selfRef_) {
    Ref();  // keep this object alive while the loop may call into it
    selfRef_ = true;
  }
  return env.Undefined();
}

void Link::StopPoll() {
  if (poll_ != nullptr) {
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }
  if (cb_ != nullptr) {
    napi_delete_reference(env_, cb_);
    cb_ = nullptr;
  }
  if (actx_ != nullptr) {
    napi_async_destroy(env_, actx_);
    actx_ = nullptr;
  }
  if (selfRef_) {
    selfRef_ = false;
    Unref();
  }
}

// ---------------------------------------------------------------------------------------------
// Close

void Link::CloseAll() {
  if (retry_ != nullptr) {
    uv_timer_stop(retry_);
    uv_close(reinterpret_cast<uv_handle_t*>(retry_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    retry_ = nullptr;
  }
  if (poll_ != nullptr) {
    // From the destructor (environment teardown) only the libuv side can be released safely.
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }
  if (xsk != nullptr) {
    delete xsk;  // detaches the XDP program (bpf_link), closes the socket (fd), unmaps the rings
    xsk = nullptr;
    fd = -1;
  }
  if (ring.shared != nullptr) {
    // Unmapped here unless JS still holds the ArrayBuffer over it (detached on close()). AF_XDP:
    // the UMEM, after its socket is closed above.
    ring.shared->Unref();
    ring = RingConfig{};
  }
  if (nlfd >= 0) {
    close(nlfd);
    nlfd = -1;
  }
  if (fd >= 0) {
    close(fd);  // a TAP we created (not persistent) disappears here
    fd = -1;
  }
}

Napi::Value Link::Close(const Napi::CallbackInfo& info) {
  if (fd >= 0) RefreshKernelDrops();
  RingMap* unmap = nullptr;
  if (ringAb_ != nullptr) {
    // JS views of the ring (a FrameBatch, a tracer) must not outlive the mapping: detach the
    // ArrayBuffer, so they read as empty, before the mapping can go.
    napi_value ab;
    if (napi_get_reference_value(env_, ringAb_, &ab) == napi_ok && ab != nullptr &&
        napi_detach_arraybuffer(env_, ab) == napi_ok && ring.shared != nullptr) {
      // Nothing in JS can reach the ring now: unmap it at once, once the socket is closed below
      // (the mapping holds an AF_PACKET socket, with its memberships, until it goes; an AF_XDP
      // socket uses its UMEM until it is closed). The ArrayBuffer still holds a reference, so
      // the RingMap outlives CloseAll; its finalizer only frees it.
      unmap = ring.shared;
      // AF_XDP: links sharing this UMEM can no longer lend it to JS.
      if (kind == LinkKind::kXdp && xsk != nullptr) xsk->pool->viewable = false;
    }
    napi_delete_reference(env_, ringAb_);
    ringAb_ = nullptr;
  }
  StopPoll();
  CloseAll();
  // Unmapped now unless other AF_XDP links still use the UMEM (then the last one to go does it).
  if (unmap != nullptr && unmap->refs <= 1) unmap->Unmap();
  return info.Env().Undefined();
}

}  // namespace lvsio
