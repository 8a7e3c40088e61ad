// AF_XDP links: an XDP socket bound to one interface queue, its UMEM (shared by RX and TX), the
// four mmap'd rings, and the XDP program (built here from BPF instructions, no clang/libbpf)
// that redirects the queue's frames to the socket through an XSKMAP.
//
// Frame ownership (aligned chunks of `frameSize` bytes):
//   chunks [0, rxFrames)              : RX side, always either in the fill ring, in the kernel,
//                                       or in the RX ring waiting for us (we give each back to
//                                       the fill ring as soon as we copied it out);
//   chunks [rxFrames, rxFrames+txFrames): TX side, on our free stack, in the TX ring, in the
//                                       kernel, or in the completion ring.
// The fill ring is as large as the RX pool and the TX ring as large as the TX pool, so a chunk
// taken from the pool always finds room in its ring.
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

class Xsk {
 public:
  ~Xsk();
  int fd = -1;      // the AF_XDP socket (also the Link's fd, for poll)
  int mapFd = -1;   // XSKMAP
  int progFd = -1;  // the XDP program
  int linkFd = -1;  // bpf_link attaching the program to the interface (detaches when closed)
  uint8_t* umem = nullptr;
  size_t umemLen = 0;
  uint32_t frameSize = 0;
  uint32_t rxFrames = 0;
  uint32_t txFrames = 0;
  XskRing rx, tx, fill, comp;
  std::vector<uint64_t> free;  // TX chunks we own
  bool zeroCopy = false;
  bool driverMode = false;
  uint32_t maxLen = 0;  // longest frame we send (MTU + 18)
  uint64_t kernelDropsSeen = 0;

  // Copy up to `max` frames out of the RX ring into slab slots start.. ; give the chunks back
  // to the fill ring. `st` is the Link's counter array (link.h StatSlot).
  int32_t Rx(uint8_t* slab, uint32_t* off, uint32_t* len, uint32_t start, uint32_t max, uint32_t slot,
             uint32_t headroom, uint64_t* st);
  // Copy every frame with egress[i] == linkId into a TX chunk and queue it; one kick.
  uint32_t Tx(uint8_t* slab, size_t slabLen, const uint32_t* off, const uint32_t* len, const int16_t* egress,
              uint32_t count, int16_t linkId, uint64_t* st);
  // Ask the kernel to send what the TX ring holds. False: descriptors are left (retry later).
  bool Kick(uint64_t* st);
  // Drops the kernel reports (XDP_STATISTICS), cumulative.
  uint64_t KernelDrops() const;
  uint32_t Reap();  // completion ring -> free stack

 private:
  uint32_t fillPending_ = 0;
};

Napi::Value OpenXdp(const Napi::CallbackInfo& info);
// The program's instructions for a given map fd and MAC (tests compare them word for word).
Napi::Value XdpProgramWords(const Napi::CallbackInfo& info);

}  // namespace lvsio
