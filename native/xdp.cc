// AF_XDP: see xdp.h. Everything here runs on the main thread; the rings are single-producer /
// single-consumer with the kernel on the other side (acquire loads of the kernel's index,
// release stores of ours).
#include "xdp.h"

#include <linux/if_link.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "addon.h"
#include "common.h"
#include "link.h"

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif

namespace lvsio {

namespace {

constexpr uint32_t kEthHdr = 14;
// The kernel keeps XDP_PACKET_HEADROOM (256) bytes in front of a received frame in its chunk.
constexpr uint32_t kXdpHeadroom = 256;
// What a FrameBatch needs in front of a frame it views (HEADROOM in src/datapath/io/batch.ts).
constexpr uint32_t kViewHeadroom = kRingHeadroom;
// <linux/if_xdp.h> of 6.17+; older headers lack it.
constexpr int kXdpMaxTxSkbBudget = 9;
// SO_PREFER_BUSY_POLL and SO_BUSY_POLL_BUDGET (5.11+), which older libc headers lack.
constexpr int kSoPreferBusyPoll = 69;
constexpr int kSoBusyPollBudget = 70;

inline uint32_t LoadAcquire(const uint32_t* p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
inline void StoreRelease(uint32_t* p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

long Bpf(int cmd, union bpf_attr* attr, unsigned size) { return syscall(__NR_bpf, cmd, attr, size); }

struct bpf_insn Insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  struct bpf_insn i;
  memset(&i, 0, sizeof i);
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

uint32_t RoundPow2(uint32_t v) {
  uint32_t p = 1;
  while (p < v) p <<= 1;
  return p;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The XDP program
//
// "all" (mac == nullptr), 6 instructions:
//   r2 = *(u32 *)(r1 + 16)        ; ctx->rx_queue_index
//   r1 = map_fd ll                ; BPF_PSEUDO_MAP_FD (2 slots)
//   r3 = XDP_PASS                 ; fallback action when the queue has no socket
//   call bpf_redirect_map
//   exit
// "mac": first checks the destination MAC; frames neither to `mac` nor to a group address go
// to the kernel (XDP_PASS) without touching the map.
std::vector<struct bpf_insn> XdpProgram(int mapFd, const uint8_t* mac) {
  std::vector<struct bpf_insn> p;
  const uint8_t r0 = BPF_REG_0, r1 = BPF_REG_1, r2 = BPF_REG_2, r3 = BPF_REG_3, r4 = BPF_REG_4, r5 = BPF_REG_5;
  size_t passJumps[3] = {0, 0, 0};
  size_t groupJump = 0;
  if (mac != nullptr) {
    // The comparison constants are what a 32-bit / 16-bit load of the frame's first bytes
    // yields on this host (memcpy keeps it right on either byte order).
    uint32_t lo;
    uint16_t hi;
    memcpy(&lo, mac, 4);
    memcpy(&hi, mac + 4, 2);
    p.push_back(Insn(BPF_LDX | BPF_MEM | BPF_W, r2, r1, 0, 0));  // r2 = ctx->data
    p.push_back(Insn(BPF_LDX | BPF_MEM | BPF_W, r3, r1, 4, 0));  // r3 = ctx->data_end
    p.push_back(Insn(BPF_ALU64 | BPF_MOV | BPF_X, r4, r2, 0, 0));
    p.push_back(Insn(BPF_ALU64 | BPF_ADD | BPF_K, r4, 0, 0, 6));
    passJumps[0] = p.size();
    p.push_back(Insn(BPF_JMP | BPF_JGT | BPF_X, r4, r3, 0, 0));  // shorter than 6 bytes: pass
    p.push_back(Insn(BPF_LDX | BPF_MEM | BPF_B, r5, r2, 0, 0));
    groupJump = p.size();
    p.push_back(Insn(BPF_JMP | BPF_JSET | BPF_K, r5, 0, 0, 1));  // group bit: redirect
    p.push_back(Insn(BPF_LDX | BPF_MEM | BPF_W, r5, r2, 0, 0));
    passJumps[1] = p.size();
    p.push_back(Insn(BPF_JMP32 | BPF_JNE | BPF_K, r5, 0, 0, static_cast<int32_t>(lo)));
    p.push_back(Insn(BPF_LDX | BPF_MEM | BPF_H, r5, r2, 4, 0));
    passJumps[2] = p.size();
    p.push_back(Insn(BPF_JMP32 | BPF_JNE | BPF_K, r5, 0, 0, hi));
  }
  const size_t redirect = p.size();
  p.push_back(Insn(BPF_LDX | BPF_MEM | BPF_W, r2, r1, 16, 0));
  p.push_back(Insn(BPF_LD | BPF_DW | BPF_IMM, r1, BPF_PSEUDO_MAP_FD, 0, mapFd));
  p.push_back(Insn(0, 0, 0, 0, 0));
  p.push_back(Insn(BPF_ALU64 | BPF_MOV | BPF_K, r3, 0, 0, XDP_PASS));
  p.push_back(Insn(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_redirect_map));
  p.push_back(Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
  if (mac != nullptr) {
    const size_t pass = p.size();
    p.push_back(Insn(BPF_ALU64 | BPF_MOV | BPF_K, r0, 0, 0, XDP_PASS));
    p.push_back(Insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
    for (size_t j : passJumps) p[j].off = static_cast<int16_t>(pass - j - 1);
    p[groupJump].off = static_cast<int16_t>(redirect - groupJump - 1);
  }
  return p;
}

Napi::Value XdpProgramWords(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "xdpProgram(mapFd, mac?)");
  const int mapFd = info[0].As<Napi::Number>().Int32Value();
  const uint8_t* mac = nullptr;
  if (info.Length() > 1 && info[1].IsTypedArray()) {
    Napi::Uint8Array m = info[1].As<Napi::Uint8Array>();
    if (m.ElementLength() != 6) throw Napi::TypeError::New(env, "mac must be 6 bytes");
    mac = m.Data();
  }
  std::vector<struct bpf_insn> p = XdpProgram(mapFd, mac);
  Napi::Uint8Array out = Napi::Uint8Array::New(env, p.size() * sizeof(struct bpf_insn));
  memcpy(out.Data(), p.data(), out.ByteLength());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Data path

Xsk::~Xsk() {
  // The bpf_link first: the interface stops redirecting before the socket goes away. The UMEM
  // mapping belongs to the Link (its RingMap), unmapped after this.
  if (linkFd >= 0) close(linkFd);
  if (fd >= 0) close(fd);
  if (progFd >= 0) close(progFd);
  if (mapFd >= 0) close(mapFd);
  for (XskRing* r : {&rx, &tx, &fill, &comp})
    if (r->map != nullptr) munmap(r->map, r->mapLen);
  if (pool != nullptr) {
    if (pool->ownerFd == fd) pool->ownerFd = -1;  // closed: no socket can bind to the UMEM any more
    auto& m = pool->members;
    for (size_t i = 0; i < m.size(); i++)
      if (m[i] == this) {
        m.erase(m.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
    pool->Unref();
  }
}

void UmemPool::RefillAll(Xsk* first) {
  for (Xsk* m : members)
    if (m != first) m->Refill();
  first->Refill();
}

void UmemPool::Unref() {
  if (--refs > 0) return;
  if (map != nullptr) map->Unref();
  delete this;
}

uint32_t Xsk::Reap() {
  uint32_t cons = *comp.consumer;
  const uint32_t prod = LoadAcquire(comp.producer);
  const auto* d = reinterpret_cast<const uint64_t*>(comp.desc);
  const uint64_t chunkMask = ~static_cast<uint64_t>(frameSize - 1);
  uint32_t n = 0;
  while (cons != prod) {
    pool->free.push_back(d[cons & comp.mask] & chunkMask);  // capacity: every chunk
    cons++;
    n++;
  }
  if (n > 0) StoreRelease(comp.consumer, cons);
  return n;
}

void Xsk::Refill() {
  uint32_t fprod = *fill.producer;
  const uint32_t room = fill.size - (fprod - LoadAcquire(fill.consumer));
  auto* fdesc = reinterpret_cast<uint64_t*>(fill.desc);
  uint32_t n = 0;
  while (n < room && pool->free.size() > pool->reserve) {
    fdesc[fprod & fill.mask] = pool->free.back();
    pool->free.pop_back();
    fprod++;
    n++;
  }
  if (n > 0) StoreRelease(fill.producer, fprod);
  // need_wakeup: a driver that stopped for want of fill-ring entries is woken by a receive call.
  if (__atomic_load_n(fill.flags, __ATOMIC_ACQUIRE) & XDP_RING_NEED_WAKEUP)
    recvfrom(fd, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
}

void Xsk::Poke() {
  // With SO_PREFER_BUSY_POLL the kernel leaves the queue's NAPI poll (the XDP program, the copy
  // into the UMEM) to the socket's receive calls while they come often enough: this one runs it
  // once, here, for what the RX ring has room for. Excess frames wait in (and overflow) the
  // driver's queue instead of being processed and then dropped at a full RX ring.
  recvfrom(fd, nullptr, 0, MSG_DONTWAIT, nullptr, nullptr);
}

int32_t Xsk::Rx(uint8_t* slab, uint32_t* off, uint32_t* len, uint32_t start, uint32_t max, uint32_t slot,
                uint32_t headroom, uint64_t* st) {
  if (busyPoll) Poke();
  Reap();
  const uint32_t room = slot - headroom;
  uint32_t cons = *rx.consumer;
  const uint32_t prod = LoadAcquire(rx.producer);
  const auto* descs = reinterpret_cast<const struct xdp_desc*>(rx.desc);
  const uint64_t chunkMask = ~static_cast<uint64_t>(frameSize - 1);
  uint32_t k = 0;
  while (k < max && cons != prod) {
    const struct xdp_desc& d = descs[cons & rx.mask];
    cons++;
    const uint64_t addr = d.addr;
    const uint32_t n = d.len;
    if (n < kEthHdr || n > room || addr + n > umemLen) {
      st[kRxDropped]++;
      if (n >= kEthHdr) st[kRxTruncated]++;
      if (n > maxLen) st[kRxGso]++;
    } else {
      const uint32_t i = start + k;
      const uint32_t o = i * slot + headroom;
      memcpy(slab + o, umem + addr, n);
      off[i] = o;
      len[i] = n;
      st[kRxPackets]++;
      st[kRxBytes] += n;
      st[kRxCopied]++;
      k++;
    }
    pool->free.push_back(addr & chunkMask);  // copied out: the chunk goes back to the kernel below
  }
  if (cons != *rx.consumer) StoreRelease(rx.consumer, cons);
  pool->RefillAll(this);
  return static_cast<int32_t>(k);
}

void Xsk::Release() {
  for (uint32_t i = 0; i < pool->heldCount; i++)
    if (pool->held[i] != kSent) pool->free.push_back(pool->held[i]);
  pool->heldCount = 0;
  pool->RefillAll(this);
}

int32_t Xsk::RxView(uint32_t* off, uint32_t* len, uint32_t start, uint32_t max, uint64_t* st) {
  // A batch starting afresh (start 0) is done with what it held; one appending (start > 0) keeps
  // frames 0..start-1 (anything held beyond them is no longer in the batch: give it back).
  if (start == 0) {
    Release();
  } else if (pool->heldCount > start) {
    for (uint32_t i = start; i < pool->heldCount; i++)
      if (pool->held[i] != kSent) pool->free.push_back(pool->held[i]);
    pool->heldCount = start;
  }
  if (busyPoll) Poke();
  Reap();
  if (pool->held.size() < static_cast<size_t>(start) + max) pool->held.resize(static_cast<size_t>(start) + max, kSent);
  // Entries between what we held and `start` (a batch that got frames elsewhere first) are
  // not ours: mark them so Release and Tx leave them alone.
  for (uint32_t i = pool->heldCount; i < start; i++) pool->held[i] = kSent;
  uint32_t cons = *rx.consumer;
  const uint32_t prod = LoadAcquire(rx.producer);
  const auto* descs = reinterpret_cast<const struct xdp_desc*>(rx.desc);
  const uint64_t chunkMask = ~static_cast<uint64_t>(frameSize - 1);
  uint32_t k = 0;
  while (k < max && cons != prod) {
    const struct xdp_desc& d = descs[cons & rx.mask];
    cons++;
    const uint64_t addr = d.addr;
    const uint32_t n = d.len;
    const uint64_t chunk = addr & chunkMask;
    // The frame must leave HEADROOM (64) in front of it within its chunk (the kernel leaves 256).
    if (n < kEthHdr || n > maxLen || addr - chunk < kViewHeadroom || addr - chunk + n > frameSize ||
        addr + n > umemLen) {
      st[kRxDropped]++;
      if (n >= kEthHdr) st[kRxTruncated]++;
      if (n > maxLen) st[kRxGso]++;
      pool->free.push_back(chunk);
      continue;
    }
    const uint32_t i = start + k;
    off[i] = static_cast<uint32_t>(addr);
    len[i] = n;
    pool->held[i] = chunk;
    st[kRxPackets]++;
    st[kRxBytes] += n;
    k++;
  }
  pool->heldCount = start + k;
  if (cons != *rx.consumer) StoreRelease(rx.consumer, cons);
  pool->RefillAll(this);  // completions reaped above, dropped frames: back to the kernel in one update
  return static_cast<int32_t>(k);
}

bool Xsk::Kick(uint64_t* st) {
  // Only when the kernel says it is needed (XDP_USE_NEED_WAKEUP). In copy mode the kernel sets
  // the flag on the TX ring for good: each sendto() transmits one bounded batch (32, or the
  // XDP_MAX_TX_SKB_BUDGET we set) and returns EAGAIN while descriptors remain, so we loop while
  // it makes progress.
  for (int round = 0; round < 256; round++) {
    const uint32_t prod = *tx.producer;
    const uint32_t before = LoadAcquire(tx.consumer);
    if (before == prod) return true;
    if (!(__atomic_load_n(tx.flags, __ATOMIC_ACQUIRE) & XDP_RING_NEED_WAKEUP)) return true;
    ssize_t r = sendto(fd, nullptr, 0, MSG_DONTWAIT, nullptr, 0);
    if (r < 0 && errno == EINTR) continue;
    if (zeroCopy) {
      // The driver transmits from its NAPI context; the wake-up is all we can do.
      if (r < 0 && errno != EAGAIN && errno != EBUSY && errno != ENOBUFS) st[kLastErrno] = errno;
      return r >= 0 || errno != EAGAIN;
    }
    if (r < 0 && errno != EAGAIN && errno != EBUSY && errno != ENOBUFS) {
      st[kLastErrno] = errno;  // ENETDOWN, ENXIO: the descriptors stay; the retry timer tries again
      return false;
    }
    if (LoadAcquire(tx.consumer) == before) return false;  // no progress: device queue full
  }
  return LoadAcquire(tx.consumer) == *tx.producer;
}

bool Xsk::TxRoom(uint32_t tprod, uint64_t* st) {
  if (tprod - LoadAcquire(tx.consumer) < tx.size) return true;
  // The TX ring is full: push out what it holds, look again once.
  StoreRelease(tx.producer, tprod);
  Kick(st);
  Reap();
  return tprod - LoadAcquire(tx.consumer) < tx.size;
}

uint32_t Xsk::Tx(uint8_t* slab, size_t slabLen, const uint32_t* off, const uint32_t* len, const int16_t* egress,
                 uint32_t count, int16_t linkId, uint64_t* st) {
  Reap();
  const bool own = slab == umem;  // the batch views this link's UMEM (rxView)
  const uint64_t chunkMask = ~static_cast<uint64_t>(frameSize - 1);
  uint32_t tprod = *tx.producer;
  auto* descs = reinterpret_cast<struct xdp_desc*>(tx.desc);
  uint32_t sent = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (egress[i] != linkId) continue;
    const uint32_t o = off[i], n = len[i];
    if (n < kEthHdr || n > maxLen || n > frameSize || static_cast<uint64_t>(o) + n > slabLen) {
      st[kTxDropped]++;
      continue;
    }
    if (!TxRoom(tprod, st)) {
      st[kTxDropped]++;
      continue;
    }
    uint64_t addr;
    const uint64_t chunk = static_cast<uint64_t>(o) & chunkMask;
    if (own && i < pool->heldCount && pool->held[i] == chunk && ((static_cast<uint64_t>(o) + n - 1) & chunkMask) == chunk) {
      // By descriptor: the frame leaves from where it was received (and rewritten).
      addr = o;
      pool->held[i] = kSent;
      st[kTxInPlace]++;
    } else {
      // A copy into a free chunk: frames from a slab, another link's memory, or (never from the
      // director) a frame of ours already sent or moved out of its chunk.
      if (pool->free.empty() && Reap() == 0) {
        StoreRelease(tx.producer, tprod);
        Kick(st);
        if (Reap() == 0) {
          st[kTxDropped]++;
          continue;
        }
      }
      addr = pool->free.back() + kXdpHeadroom;
      pool->free.pop_back();
      memcpy(umem + addr, slab + o, n);
      st[kTxCopied]++;
    }
    struct xdp_desc& d = descs[tprod & tx.mask];
    d.addr = addr;
    d.len = n;
    d.options = 0;
    tprod++;
    st[kTxPackets]++;
    st[kTxBytes] += n;
    sent++;
  }
  if (tprod != *tx.producer) StoreRelease(tx.producer, tprod);
  return sent;
}

uint64_t Xsk::KernelDrops() const {
  struct xdp_statistics s;
  memset(&s, 0, sizeof s);
  socklen_t sl = sizeof s;
  if (getsockopt(fd, SOL_XDP, XDP_STATISTICS, &s, &sl) != 0) return kernelDropsSeen;
  return s.rx_dropped + s.rx_ring_full + s.rx_invalid_descs;
}

// ---------------------------------------------------------------------------------------------
// Open

namespace {

void MapRing(Napi::Env env, Xsk& x, XskRing& r, const struct xdp_ring_offset& o, uint32_t size, size_t descSize,
             off_t pgoff, const char* what) {
  r.mapLen = o.desc + static_cast<size_t>(size) * descSize;
  void* m = mmap(nullptr, r.mapLen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, x.fd, pgoff);
  if (m == MAP_FAILED) ThrowErrno(env, "xsk", "mmap", errno, std::string("AF_XDP ") + what + " ring");
  r.map = m;
  auto* b = static_cast<uint8_t*>(m);
  r.producer = reinterpret_cast<uint32_t*>(b + o.producer);
  r.consumer = reinterpret_cast<uint32_t*>(b + o.consumer);
  r.flags = reinterpret_cast<uint32_t*>(b + o.flags);
  r.desc = b + o.desc;
  r.size = size;
  r.mask = size - 1;
}

// The program, its map and its bpf_link, as OpenXdp (a socket's own) and AttachXdp (one for
// several sockets) make them. Each returns a descriptor the caller owns, or throws with the
// stage src/datapath/io/xdp.ts classifies (xdpCode) and nothing left open.

// A BPF_MAP_TYPE_XSKMAP with `entries` slots, keyed by queue index.
int CreateXskMap(Napi::Env env, uint32_t entries, const std::string& what) {
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_type = BPF_MAP_TYPE_XSKMAP;
  a.key_size = 4;
  a.value_size = 4;
  a.max_entries = entries;
  strncpy(a.map_name, "lvs_xsks", sizeof a.map_name - 1);
  const int fd = static_cast<int>(Bpf(BPF_MAP_CREATE, &a, sizeof a));
  if (fd < 0) ThrowErrno(env, "bpf-map", "bpf(BPF_MAP_CREATE, XSKMAP)", errno, what);
  return fd;
}

// XdpProgram(mapFd, mac), loaded. A refused program is loaded once more with the verifier's log,
// whose end goes into the message.
int LoadXdpProgram(Napi::Env env, int mapFd, const uint8_t* mac, const std::string& what) {
  std::vector<struct bpf_insn> prog = XdpProgram(mapFd, mac);
  static const char kLicense[] = "Dual MIT/GPL";
  std::vector<char> log(16384, 0);
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.prog_type = BPF_PROG_TYPE_XDP;
  a.insn_cnt = static_cast<uint32_t>(prog.size());
  a.insns = reinterpret_cast<uint64_t>(prog.data());
  a.license = reinterpret_cast<uint64_t>(kLicense);
  a.expected_attach_type = BPF_XDP;
  strncpy(a.prog_name, "lvs_xsk_redir", sizeof a.prog_name - 1);
  const int fd = static_cast<int>(Bpf(BPF_PROG_LOAD, &a, sizeof a));
  if (fd < 0) {
    const int err = errno;
    memset(&a, 0, sizeof a);  // again with the verifier's log, for the message
    a.prog_type = BPF_PROG_TYPE_XDP;
    a.insn_cnt = static_cast<uint32_t>(prog.size());
    a.insns = reinterpret_cast<uint64_t>(prog.data());
    a.license = reinterpret_cast<uint64_t>(kLicense);
    a.expected_attach_type = BPF_XDP;
    a.log_level = 1;
    a.log_buf = reinterpret_cast<uint64_t>(log.data());
    a.log_size = static_cast<uint32_t>(log.size());
    const int again = static_cast<int>(Bpf(BPF_PROG_LOAD, &a, sizeof a));
    if (again >= 0) close(again);  // (accepted the second time: still report the first refusal)
    std::string v(log.data());
    if (v.size() > 300) v = "..." + v.substr(v.size() - 300);
    ThrowErrno(env, "bpf-prog", "bpf(BPF_PROG_LOAD, XDP)", err, what + (v.empty() ? "" : " [verifier: " + v + "]"));
  }
  return fd;
}

}  // namespace

// Attach the program to the interface with a bpf_link, which detaches it when the descriptor
// closes, also when the process dies. attach "auto": driver mode, generic (skb) mode where the
// driver has no XDP; "drv" / "skb": only that mode. *driverMode says which one it got.
int AttachXdpLink(Napi::Env env, int progFd, int ifindex, const std::string& attach, const std::string& what,
                  bool* driverMode) {
  auto linkCreate = [&](uint32_t flags) {
    union bpf_attr a;
    memset(&a, 0, sizeof a);
    a.link_create.prog_fd = static_cast<uint32_t>(progFd);
    // target_ifindex shares its slot with target_fd; headers before 5.9 name only the latter.
    a.link_create.target_fd = static_cast<uint32_t>(ifindex);
    a.link_create.attach_type = BPF_XDP;
    a.link_create.flags = flags;
    return static_cast<int>(Bpf(BPF_LINK_CREATE, &a, sizeof a));
  };
  auto busy = [](int err) {
    return err == EBUSY || err == EEXIST ? " (the interface already has an XDP program)" : "";
  };
  *driverMode = false;
  if (attach != "skb") {
    const int fd = linkCreate(XDP_FLAGS_DRV_MODE);
    if (fd >= 0) {
      *driverMode = true;
      return fd;
    }
    const int err = errno;
    if (attach == "drv" || err == EBUSY || err == EEXIST || err == EPERM)
      ThrowErrno(env, "xdp-attach", "bpf(BPF_LINK_CREATE, XDP driver mode)", err, what + busy(err));
  }
  const int fd = linkCreate(XDP_FLAGS_SKB_MODE);
  if (fd < 0) {
    const int err = errno;
    ThrowErrno(env, "xdp-attach", "bpf(BPF_LINK_CREATE, XDP generic mode)", err, what + busy(err));
  }
  return fd;
}

Napi::Value OpenXdp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "openXdp(options)");
  Napi::Object o = info[0].As<Napi::Object>();
  const std::string ifname = OptString(o, "ifname");
  const std::string netns = OptString(o, "netns");
  const std::string redirect = OptString(o, "redirect", "all");
  const std::string zc = OptString(o, "zeroCopy", "auto");
  const std::string attach = OptString(o, "attach", "auto");
  const int64_t queue = OptInt(o, "queue", 0);
  const int64_t rxFrames = OptInt(o, "rxFrames", 2048);
  const int64_t txFrames = OptInt(o, "txFrames", 2048);
  const bool view = OptBool(o, "view", true);
  const int64_t umemFrames = OptInt(o, "umemFrames", 0);
  const int64_t busyPoll = OptInt(o, "busyPoll", 0);
  const int64_t busyBudget = OptInt(o, "busyBudget", 64);
  // An XSKMAP (attachXdp's) whose program already redirects the interface's queues: this socket
  // only takes its queue's entry, with no map, program or bpf_link of its own.
  const int64_t xskMapFd = OptInt(o, "xskMapFd", -1);
  // Another AF_XDP link whose UMEM this socket shares (XDP_SHARED_UMEM).
  UmemPool* share = nullptr;
  Napi::Value shareV = o.Get("share");
  if (!shareV.IsUndefined() && !shareV.IsNull()) {
    AddonData* data = env.GetInstanceData<AddonData>();
    if (!shareV.IsObject() || !shareV.As<Napi::Object>().InstanceOf(data->linkCtor.Value()))
      throw Napi::TypeError::New(env, "option share must be an AF_XDP link");
    Link* other = Link::Unwrap(shareV.As<Napi::Object>());
    if (other->kind != LinkKind::kXdp || other->xsk == nullptr)
      throw Napi::TypeError::New(env, "option share must be an open AF_XDP link");
    share = other->xsk->pool;
    if (share->ownerFd < 0) throw Napi::TypeError::New(env, "option share: the UMEM's first link is closed");
  }
  if (umemFrames != 0 && (umemFrames < 128 || umemFrames > (1 << 20)))
    throw Napi::RangeError::New(env, "umemFrames must be in 128..1048576");
  if (redirect != "all" && redirect != "mac") throw Napi::TypeError::New(env, "option redirect must be \"all\" or \"mac\"");
  if (zc != "auto" && zc != "on" && zc != "off") throw Napi::TypeError::New(env, "option zeroCopy must be auto, on or off");
  if (attach != "auto" && attach != "drv" && attach != "skb")
    throw Napi::TypeError::New(env, "option attach must be auto, drv or skb");
  if (queue < 0 || queue > 4095) throw Napi::RangeError::New(env, "queue must be in 0..4095");
  if (busyPoll < 0 || busyPoll > 1000000) throw Napi::RangeError::New(env, "busyPoll must be in 0..1000000 (µs)");
  if (busyBudget < 1 || busyBudget > 65535) throw Napi::RangeError::New(env, "busyBudget must be in 1..65535");
  if (rxFrames < 64 || rxFrames > 65536 || txFrames < 64 || txFrames > 65536)
    throw Napi::RangeError::New(env, "rxFrames/txFrames must be in 64..65536");
  if (xskMapFd > INT32_MAX) throw Napi::RangeError::New(env, "xskMapFd must be a file descriptor");

  struct ifreq ifr;
  SetIfName(env, ifr, ifname, "ifname");
  NetnsGuard ns(env, netns);
  Fd ctl(ControlSocket(env, "socket"));
  const int ifindex = IfIndex(env, ctl.get(), ifname, "ifname");
  uint8_t mac[6];
  GetMac(env, ctl.get(), ifname, mac, "ifname");
  const int mtu = GetMtu(env, ctl.get(), ifname, "ifname");
  const uint32_t maxLen = static_cast<uint32_t>(mtu) + kEthHdr + 4;
  const uint32_t frameSize = share != nullptr ? share->frameSize : maxLen + kXdpHeadroom <= 2048 ? 2048 : 4096;
  if (maxLen + kXdpHeadroom > frameSize)
    throw Napi::RangeError::New(env, "MTU " + std::to_string(mtu) + " of " + ifname + " is too large for " +
                                         (share != nullptr ? "the shared UMEM's chunks" : "an AF_XDP link (at most 3822)"));
  const std::string what = "AF_XDP on " + ifname + " queue " + std::to_string(queue);

  auto x = std::make_unique<Xsk>();
  x->frameSize = frameSize;
  x->maxLen = maxLen;
  x->rxFrames = RoundPow2(static_cast<uint32_t>(rxFrames));
  x->txFrames = RoundPow2(static_cast<uint32_t>(txFrames));
  x->fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (x->fd < 0) ThrowErrno(env, "xsk", "socket(AF_XDP)", errno, what);
  auto setopt = [&](int opt, const void* v, socklen_t l, const char* name) {
    if (setsockopt(x->fd, SOL_XDP, opt, v, l) != 0) ThrowErrno(env, "xsk", name, errno, what);
  };

  const uint32_t rxN = x->rxFrames, txN = x->txFrames;
  if (share != nullptr) {
    // The other link's UMEM: no registration; this socket brings rxN + txN of its chunks.
    if (static_cast<uint64_t>(share->assigned) + rxN + txN > share->chunks)
      throw Napi::RangeError::New(env, what + ": the shared UMEM has " + std::to_string(share->chunks - share->assigned) +
                                           " chunks left, this link needs " + std::to_string(rxN + txN) +
                                           " (open the first link with a larger umemFrames)");
    share->refs++;
    x->pool = share;
  } else {
    // UMEM: one anonymous mapping, registered with the socket (the kernel pins its pages). It
    // is reference-counted (RingMap) like an AF_PACKET ring: the pool and each Link using it
    // hold it, and so does the ArrayBuffer JS sees it through; unmapped when all let go (close()
    // detaches the ArrayBuffer). `umemFrames` sizes it for links that will share it.
    const uint32_t chunks = umemFrames > rxN + txN ? static_cast<uint32_t>(umemFrames) : rxN + txN;
    const size_t len = static_cast<size_t>(chunks) * frameSize;
    void* um = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (um == MAP_FAILED) ThrowErrno(env, "xsk", "mmap", errno, what + ": UMEM");
    auto* pool = new UmemPool();
    x->pool = pool;  // from here on freed with the Xsk
    pool->map = new RingMap();
    pool->map->map = static_cast<uint8_t*>(um);
    pool->map->len = len;
    pool->base = static_cast<uint8_t*>(um);
    pool->len = len;
    pool->frameSize = frameSize;
    pool->chunks = chunks;
    pool->ownerFd = x->fd;
    pool->free.reserve(chunks);
    struct xdp_umem_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.addr = reinterpret_cast<uint64_t>(pool->base);
    reg.len = len;
    reg.chunk_size = frameSize;
    reg.headroom = 0;
    setopt(XDP_UMEM_REG, &reg, sizeof reg, "setsockopt(XDP_UMEM_REG)");
  }
  UmemPool* pool = x->pool;
  x->umem = pool->base;
  x->umemLen = pool->len;
  x->view = view;
  setopt(XDP_UMEM_FILL_RING, &rxN, sizeof rxN, "setsockopt(XDP_UMEM_FILL_RING)");
  setopt(XDP_UMEM_COMPLETION_RING, &txN, sizeof txN, "setsockopt(XDP_UMEM_COMPLETION_RING)");
  setopt(XDP_RX_RING, &rxN, sizeof rxN, "setsockopt(XDP_RX_RING)");
  setopt(XDP_TX_RING, &txN, sizeof txN, "setsockopt(XDP_TX_RING)");
  // Copy mode transmits at most 32 descriptors per sendto() unless told otherwise (kernels
  // 6.17+: XDP_MAX_TX_SKB_BUDGET, 32..TX ring size): let one kick take a whole batch.
  const uint32_t budget = txN < 256 ? txN : 256;
  setsockopt(x->fd, SOL_XDP, kXdpMaxTxSkbBudget, &budget, sizeof budget);  // older kernels: ENOPROTOOPT
  struct xdp_mmap_offsets mo;
  socklen_t mol = sizeof mo;
  if (getsockopt(x->fd, SOL_XDP, XDP_MMAP_OFFSETS, &mo, &mol) != 0)
    ThrowErrno(env, "xsk", "getsockopt(XDP_MMAP_OFFSETS)", errno, what);
  MapRing(env, *x, x->rx, mo.rx, rxN, sizeof(struct xdp_desc), XDP_PGOFF_RX_RING, "RX");
  MapRing(env, *x, x->tx, mo.tx, txN, sizeof(struct xdp_desc), XDP_PGOFF_TX_RING, "TX");
  MapRing(env, *x, x->fill, mo.fr, rxN, sizeof(uint64_t), XDP_UMEM_PGOFF_FILL_RING, "fill");
  MapRing(env, *x, x->comp, mo.cr, txN, sizeof(uint64_t), XDP_UMEM_PGOFF_COMPLETION_RING, "completion");
  // Bind: zero-copy where the driver supports it, else copy mode.
  struct sockaddr_xdp sa;
  memset(&sa, 0, sizeof sa);
  sa.sxdp_family = AF_XDP;
  sa.sxdp_ifindex = static_cast<uint32_t>(ifindex);
  sa.sxdp_queue_id = static_cast<uint32_t>(queue);
  int rc = -1;
  if (share != nullptr) {
    // The flags (copy or zero-copy, need_wakeup) are the UMEM owner's.
    sa.sxdp_flags = XDP_SHARED_UMEM;
    sa.sxdp_shared_umem_fd = static_cast<uint32_t>(share->ownerFd);
    for (int tries = 0;; tries++) {
      if (bind(x->fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) == 0) break;
      const int err = errno;
      if (err == EBUSY && tries < 100) {
        usleep(10000);
        continue;
      }
      ThrowErrno(env, "xsk-bind", "bind(XDP_SHARED_UMEM)", err,
                 what + (err == EBUSY ? " (another AF_XDP socket is bound to this queue)" : ""));
    }
    rc = 0;
  } else if (zc != "off") {
    sa.sxdp_flags = XDP_ZEROCOPY | XDP_USE_NEED_WAKEUP;
    rc = bind(x->fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa);
    if (rc != 0 && zc == "on") ThrowErrno(env, "xsk-bind", "bind(XDP_ZEROCOPY)", errno, what);
  }
  if (rc != 0) {
    sa.sxdp_flags = XDP_COPY | XDP_USE_NEED_WAKEUP;
    // EBUSY: another socket holds the queue, or one just closed there and the kernel has not
    // released its buffer pool yet (that happens in a work item after close): retry for 1 s.
    for (int tries = 0;; tries++) {
      if (bind(x->fd, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) == 0) break;
      const int err = errno;
      if (err == EBUSY && tries < 100) {
        usleep(10000);
        continue;
      }
      ThrowErrno(env, "xsk-bind", "bind(XDP_COPY)", err,
                 what + (err == EBUSY ? " (another AF_XDP socket is bound to this queue)"
                         : err == EINVAL ? " (no such queue on this device?)"
                                         : ""));
    }
  }
  if (busyPoll > 0) {
    const int one = 1, usec = static_cast<int>(busyPoll), bud = static_cast<int>(busyBudget);
    auto sockopt = [&](int opt, int v, const char* name) {
      if (setsockopt(x->fd, SOL_SOCKET, opt, &v, sizeof v) != 0) ThrowErrno(env, "xsk", name, errno, what);
    };
    sockopt(kSoPreferBusyPoll, one, "setsockopt(SO_PREFER_BUSY_POLL)");
    sockopt(SO_BUSY_POLL, usec, "setsockopt(SO_BUSY_POLL)");
    sockopt(kSoBusyPollBudget, bud, "setsockopt(SO_BUSY_POLL_BUDGET)");
    x->busyPoll = true;
  }
  struct xdp_options xo;
  socklen_t xol = sizeof xo;
  x->zeroCopy = getsockopt(x->fd, SOL_XDP, XDP_OPTIONS, &xo, &xol) == 0 && (xo.flags & XDP_OPTIONS_ZEROCOPY) != 0;

  // XSKMAP and program: the socket's own, attached to the interface, unless it joins a shared
  // XSKMAP (xskMapFd: attachXdp made the map and program and holds the bpf_link).
  if (xskMapFd < 0) {
    x->mapFd = CreateXskMap(env, static_cast<uint32_t>(queue) + 1, what);
    x->progFd = LoadXdpProgram(env, x->mapFd, redirect == "mac" ? mac : nullptr, what);
    x->linkFd = AttachXdpLink(env, x->progFd, ifindex, attach, what, &x->driverMode);
  }
  // This socket's rxN chunks go to its fill ring, its txN onto the pool's free list, which keeps
  // that many more for copies (xdp.h: Refill gives a fill ring only what is free beyond them).
  // Only now that everything else succeeded (a failed open leaves a shared pool as it was), and
  // before the XSKMAP entry makes the program redirect frames here.
  const uint64_t first = pool->assigned;
  auto* fd = reinterpret_cast<uint64_t*>(x->fill.desc);
  for (uint32_t i = 0; i < rxN; i++) fd[i] = (first + i) * frameSize;
  StoreRelease(x->fill.producer, rxN);
  for (uint32_t i = txN; i-- > 0;) pool->free.push_back((first + rxN + i) * frameSize);
  pool->assigned += rxN + txN;
  pool->reserve += txN;
  pool->members.push_back(x.get());
  const uint32_t key = static_cast<uint32_t>(queue);
  const uint32_t val = static_cast<uint32_t>(x->fd);
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_fd = static_cast<uint32_t>(xskMapFd >= 0 ? xskMapFd : x->mapFd);
  a.key = reinterpret_cast<uint64_t>(&key);
  a.value = reinterpret_cast<uint64_t>(&val);
  a.flags = BPF_ANY;
  if (Bpf(BPF_MAP_UPDATE_ELEM, &a, sizeof a) != 0) {
    const int err = errno;
    // Give the pool back its chunks as it was (a shared one lives on); the Xsk leaves its members.
    pool->free.resize(pool->free.size() - txN);
    pool->assigned -= rxN + txN;
    pool->reserve -= txN;
    // An XSKMAP refuses a key beyond its max_entries (E2BIG).
    std::string why;
    if (xskMapFd >= 0 && err == E2BIG) {
      const std::string need = std::to_string(queue + 1);
      why = " (the shared XSKMAP has fewer entries than queue + 1 = " + need + ": attach the program with queues >= " +
            need + ")";
    }
    ThrowErrno(env, "bpf-map", "bpf(BPF_MAP_UPDATE_ELEM, XSKMAP)", err, what + why);
  }

  Napi::Object obj = Link::Create(env);
  Link* link = Link::Unwrap(obj);
  link->kind = LinkKind::kXdp;
  link->name = ifname;
  link->ifindex = ifindex;
  memcpy(link->mac, mac, 6);
  link->mtu = mtu;
  link->created = false;
  link->ring.rxFrames = x->rxFrames;
  link->ring.txFrames = x->txFrames;
  link->ring.rxFrameSize = frameSize;  // FrameMemory.slotSize: chunks are frameSize-aligned
  link->ring.rx = x->umem;
  link->ring.shared = pool->map;
  pool->map->refs++;
  // Only the UMEM's owner publishes it (one ArrayBuffer per memory); a link sharing it is lent
  // through the owner's (JS: XdpIo's `memory` is the owner's).
  link->zeroCopy = view && share == nullptr;
  link->fd = x->fd;
  const bool zeroCopy = x->zeroCopy, drv = x->driverMode;
  link->xsk = x.release();
  link->Publish();
  if (share == nullptr) pool->viewable = link->RingPublished();
  auto ro = [&](const char* key, Napi::Value v) {
    obj.DefineProperty(Napi::PropertyDescriptor::Value(key, v, napi_enumerable));
  };
  // "map": the mode is that of the shared program, which the caller knows (attachXdp's result).
  ro("xdpMode", Napi::String::New(env, xskMapFd >= 0 ? "map" : drv ? "drv" : "skb"));
  ro("zeroCopy", Napi::Boolean::New(env, zeroCopy));
  ro("queue", Napi::Number::New(env, static_cast<double>(queue)));
  ro("redirect", Napi::String::New(env, redirect));
  ro("umemShared", Napi::Boolean::New(env, share != nullptr));
  return obj;
}

Napi::Value AttachXdp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "attachXdp(options)");
  Napi::Object o = info[0].As<Napi::Object>();
  const std::string ifname = OptString(o, "ifname");
  const std::string netns = OptString(o, "netns");
  const std::string redirect = OptString(o, "redirect", "all");
  const std::string attach = OptString(o, "attach", "auto");
  const int64_t queues = OptInt(o, "queues", 0);
  if (redirect != "all" && redirect != "mac") throw Napi::TypeError::New(env, "option redirect must be \"all\" or \"mac\"");
  if (attach != "auto" && attach != "drv" && attach != "skb")
    throw Napi::TypeError::New(env, "option attach must be auto, drv or skb");
  if (queues < 1 || queues > 4096) throw Napi::RangeError::New(env, "queues must be in 1..4096");

  struct ifreq ifr;
  SetIfName(env, ifr, ifname, "ifname");
  NetnsGuard ns(env, netns);
  Fd ctl(ControlSocket(env, "socket"));
  const int ifindex = IfIndex(env, ctl.get(), ifname, "ifname");
  uint8_t mac[6];
  if (redirect == "mac") GetMac(env, ctl.get(), ifname, mac, "ifname");
  const std::string what = "XDP program on " + ifname;
  // Owned until the result is built: a failure closes what was made so far.
  Fd map(CreateXskMap(env, static_cast<uint32_t>(queues), what));
  Fd prog(LoadXdpProgram(env, map.get(), redirect == "mac" ? mac : nullptr, what));
  bool drv = false;
  Fd link(AttachXdpLink(env, prog.get(), ifindex, attach, what, &drv));
  Napi::Object out = Napi::Object::New(env);
  out.Set("mapFd", Napi::Number::New(env, map.get()));
  out.Set("progFd", Napi::Number::New(env, prog.get()));
  out.Set("linkFd", Napi::Number::New(env, link.get()));
  out.Set("xdpMode", Napi::String::New(env, drv ? "drv" : "skb"));
  map.release();
  prog.release();
  link.release();
  return out;
}

}  // namespace lvsio
