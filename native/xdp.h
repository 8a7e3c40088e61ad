// AF_XDP links: an XDP socket bound to one interface queue, its UMEM (shared by RX and TX), the
// four mmap'd rings, and the XDP program (built here from BPF instructions, no clang/libbpf)
// that redirects the queue's frames to the socket through an XSKMAP.
//
// Program and XSKMAP: a socket makes its own (map, program, bpf_link closed with the socket:
// one socket per interface), or joins those AttachXdp made (OpenXdp option xskMapFd): one
// program and one XSKMAP for the whole interface, and a socket per queue, each entered at its
// queue's key (the kernel removes it from the map when the socket closes). The program keys
// the map by rx_queue_index, so it serves any number of queues.
//
// Frame ownership: the UMEM is aligned chunks of `frameSize` bytes, one pool (UmemPool) for
// every socket that uses it: the one that registered it, and others bound to it with
// XDP_SHARED_UMEM (other interfaces: each with fill and completion rings of its own). A chunk
// is always in exactly one place:
//   - in a fill ring or the kernel's receive path, then in an RX ring waiting for us;
//   - held by JavaScript (rxView lent it to a FrameBatch: `held[i]` is batch frame i's chunk);
//   - in a TX ring, the kernel's transmit path or a completion ring (sent by descriptor from
//     where it was received, or a copy of a frame from elsewhere);
//   - on the pool's free list.
// Whatever comes back (frames the batch dropped, on Release; completions, reaped in batches;
// chunks a copying Rx emptied) goes to the free list, and Refill moves free chunks to a socket's
// fill ring in one ring update, keeping `reserve` chunks free for copies (frames the engine built
// itself, frames from links without this UMEM). Each socket brings rxFrames + txFrames chunks at
// open: rxFrames into its fill ring, txFrames onto the free list (and into the reserve).
//
// The UMEM is published to JavaScript as one external ArrayBuffer (Link::Publish; the mapping is
// the Link's RingMap): frames received by rxView stay where the kernel wrote them, 256 bytes
// (XDP_PACKET_HEADROOM) after their chunk's start, with the rest of the chunk as tail room; a
// frame whose egress is this link goes back on the TX ring by its own address (off/len as the
// engine left them: an IPIP header moves the start back within the chunk), without a copy.
#pragma once

#include <linux/bpf.h>
#include <linux/if_xdp.h>
#include <napi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace lvsio {

struct XskRing {
  uint32_t* producer = nullptr;
  uint32_t* consumer = nullptr;
  uint32_t* flags = nullptr;
  uint8_t* desc = nullptr;
  uint32_t size = 0;
  uint32_t mask = 0;
  void* map = nullptr;
  size_t mapLen = 0;
};

// The XDP program: look up ctx->rx_queue_index in the XSKMAP `mapFd` and redirect there, with
// XDP_PASS as the fallback action (bpf_redirect_map's flags). With `mac`, only frames to that MAC
// or to a group address (broadcast/multicast) are redirected; other frames go to the kernel.
std::vector<struct bpf_insn> XdpProgram(int mapFd, const uint8_t* mac);

struct RingMap;  // link.h

// A UMEM and its chunk pool, shared by the sockets that use it.
struct UmemPool {
  RingMap* map = nullptr;  // the mapping (one reference held here; each Link holds one too)
  uint8_t* base = nullptr;
  size_t len = 0;
  uint32_t frameSize = 0;
  uint32_t chunks = 0;    // in the UMEM
  uint32_t assigned = 0;  // brought in by the sockets opened so far
  int ownerFd = -1;       // the socket that registered it (XDP_SHARED_UMEM binds refer to it)
  bool viewable = false;  // the owner published it to JS (Link::Publish): rxView may lend it
  std::vector<uint64_t> free;  // capacity: every chunk, so it never reallocates
  // Chunk of batch frame i while JS holds it; kSent once it went out by descriptor.
  std::vector<uint64_t> held;
  uint32_t heldCount = 0;
  uint32_t reserve = 0;
  int refs = 1;  // sockets using it
  // The open sockets on this UMEM: chunks returned by one (completions, released batches) may
  // be what another's fill ring is waiting for.
  std::vector<class Xsk*> members;
  void Unref();
  // Every member's fill ring topped up from the free list, the others before `first` (the
  // socket that just freed chunks, usually the busiest): a socket whose fill ring ran dry
  // receives nothing, so nothing of its own would ever refill it.
  void RefillAll(class Xsk* first);
};

class Xsk {
 public:
  ~Xsk();
  int fd = -1;      // the AF_XDP socket (also the Link's fd, for poll)
  int mapFd = -1;   // XSKMAP
  int progFd = -1;  // the XDP program
  int linkFd = -1;  // bpf_link attaching the program to the interface (detaches when closed)
  UmemPool* pool = nullptr;  // one reference
  uint8_t* umem = nullptr;   // pool->base (the Link's ring.shared mapping, also the ArrayBuffer's)
  size_t umemLen = 0;
  uint32_t frameSize = 0;
  uint32_t rxFrames = 0;
  uint32_t txFrames = 0;
  XskRing rx, tx, fill, comp;
  bool view = true;  // rxView may lend the UMEM (option `view`)
  bool zeroCopy = false;
  bool driverMode = false;
  // Preferred busy polling (option busyPoll > 0): Rx and RxView first make a receive call, which
  // runs the queue's NAPI poll in this thread (SO_PREFER_BUSY_POLL) for up to busyBudget frames.
  bool busyPoll = false;
  void Poke();  // that receive call
  uint32_t maxLen = 0;  // longest frame we send (MTU + 18)
  uint64_t kernelDropsSeen = 0;

  // Copy up to `max` frames out of the RX ring into slab slots start.. ; their chunks go back
  // to the fill ring. `st` is the Link's counter array (link.h StatSlot).
  int32_t Rx(uint8_t* slab, uint32_t* off, uint32_t* len, uint32_t start, uint32_t max, uint32_t slot,
             uint32_t headroom, uint64_t* st);
  // Zero copy: set off[i]/len[i] (i from start) to frames where they lie in the UMEM and hold
  // their chunks for the batch (pool->held[i]) until Release. start 0 releases what was held
  // (by any socket of the pool: one batch at a time views a UMEM).
  int32_t RxView(uint32_t* off, uint32_t* len, uint32_t start, uint32_t max, uint64_t* st);
  // The batch is done: held chunks not sent by descriptor go back (free list, then fill ring).
  void Release();
  // Queue every frame with egress[i] == linkId on the TX ring: a frame of this UMEM that an
  // rxView (of any socket of the pool) handed out as batch frame i by its own address (no
  // copy), any other frame copied into a free chunk. One kick follows (Link::Tx).
  uint32_t Tx(uint8_t* slab, size_t slabLen, const uint32_t* off, const uint32_t* len, const int16_t* egress,
              uint32_t count, int16_t linkId, uint64_t* st);
  // Ask the kernel to send what the TX ring holds. False: descriptors are left (retry later).
  bool Kick(uint64_t* st);
  // Drops the kernel reports (XDP_STATISTICS), cumulative.
  uint64_t KernelDrops() const;
  uint32_t Reap();    // completion ring -> free list
  void Refill();      // free list -> fill ring (one update), keeping pool->reserve free; need_wakeup

  static constexpr uint64_t kSent = ~static_cast<uint64_t>(0);

 private:
  bool TxRoom(uint32_t tprod, uint64_t* st);  // a TX ring slot at tprod (kicks and reaps once if full)
};

Napi::Value OpenXdp(const Napi::CallbackInfo& info);
// One XSKMAP (max_entries = option queues) and the program, attached to the interface with a
// bpf_link, for several sockets (openXdp option xskMapFd: one per queue, each with its own UMEM).
// Returns { mapFd, progFd, linkFd, xdpMode }; the caller closes the three descriptors (the link
// first: that detaches the program).
Napi::Value AttachXdp(const Napi::CallbackInfo& info);
// The program's instructions for a given map fd and MAC (tests compare them word for word).
Napi::Value XdpProgramWords(const Napi::CallbackInfo& info);
// Attach an XDP program to an interface with a bpf_link (detached when its descriptor closes,
// also when the process dies). attach "auto": driver mode, else generic (skb) mode where the
// driver has no XDP; "drv" / "skb": only that mode. *driverMode says which one it got.
int AttachXdpLink(Napi::Env env, int progFd, int ifindex, const std::string& attach, const std::string& what,
                  bool* driverMode);
// xdpcopy.cc: copy frames between two AF_XDP links of one UMEM, in C++, for the benchmark.
Napi::Value XdpCopy(const Napi::CallbackInfo& info);

}  // namespace lvsio
