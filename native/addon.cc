// lvs-ts I/O addon: TAP/TUN devices and AF_PACKET sockets with batched receive/transmit into
// caller-owned slabs, and libuv readiness callbacks. See src/datapath/io/native.ts for the JS side.
#include <napi.h>

#include "addon.h"
#include "link.h"
#include "xdp.h"

namespace lvsio {

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  data->linkCtor = Napi::Persistent(Link::Define(env));
  data->token = Napi::Persistent(Napi::Object::New(env));
  env.SetInstanceData<AddonData>(data);
  exports.Set("openTap", Napi::Function::New(env, OpenTap, "openTap"));
  exports.Set("openRaw", Napi::Function::New(env, OpenRaw, "openRaw"));
  exports.Set("openTun", Napi::Function::New(env, OpenTun, "openTun"));
  exports.Set("openXdp", Napi::Function::New(env, OpenXdp, "openXdp"));
  exports.Set("xdpProgram", Napi::Function::New(env, XdpProgramWords, "xdpProgram"));
  exports.Set("attachXdp", Napi::Function::New(env, AttachXdp, "attachXdp"));
  exports.Set("xdpCopy", Napi::Function::New(env, XdpCopy, "xdpCopy"));
  exports.Set("bpfLoadXdp", Napi::Function::New(env, BpfLoadXdp, "bpfLoadXdp"));
  exports.Set("bpfTestRun", Napi::Function::New(env, BpfTestRun, "bpfTestRun"));
  exports.Set("bpfClose", Napi::Function::New(env, BpfClose, "bpfClose"));
  exports.Set("bpfMapCreate", Napi::Function::New(env, BpfMapCreate, "bpfMapCreate"));
  exports.Set("bpfMapUpdate", Napi::Function::New(env, BpfMapUpdate, "bpfMapUpdate"));
  exports.Set("bpfMapDelete", Napi::Function::New(env, BpfMapDelete, "bpfMapDelete"));
  exports.Set("bpfMapLookup", Napi::Function::New(env, BpfMapLookup, "bpfMapLookup"));
  exports.Set("bpfMapMmap", Napi::Function::New(env, BpfMapMmap, "bpfMapMmap"));
  exports.Set("bpfAttachXdp", Napi::Function::New(env, BpfAttachXdp, "bpfAttachXdp"));
  InitSys(env, exports);
  // 2: openTun, the ipip filter, csumFixed/rxGso counters, sysctl/addr/ethtool/ipipGuard.
  // 3: netnsId. 4: peerCred. 5: openRaw joins group MACs in `macs` (PACKET_MR_MULTICAST).
  // 6: openXdp, xdpProgram.
  // 7: zero-copy AF_PACKET ring (`ring`, rxView, release), busyPoll, qdiscBypass on by default.
  // 8: AF_XDP publishes its UMEM as `ring` (option `view`), rxView/release and tx by descriptor;
  //    counters rxCopied, txCopied, txInPlace; options umemFrames and share (XDP_SHARED_UMEM),
  //    property umemShared.
  // 9: openRaw fanoutGroup/fanoutProgram (PACKET_FANOUT_CBPF), Link.setFanoutProgram.
  // 10: openXdp busyPoll/busyBudget.
  // 11: attachXdp (one XDP program and XSKMAP for several sockets), openXdp option xskMapFd.
  // 12: xdpCopy (the benchmark's AF_XDP copier, native/xdpcopy.cc).
  // 13: bpfLoadXdp, bpfTestRun, bpfClose (native/bpf.cc).
  exports.Set("abiVersion", Napi::Number::New(env, 15));
  return exports;
}

}  // namespace lvsio

static Napi::Object InitLvsIo(Napi::Env env, Napi::Object exports) { return lvsio::Init(env, exports); }

NODE_API_MODULE(lvs_io, InitLvsIo)
