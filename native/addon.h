// Per-environment data of the addon (one per Node.js main thread or worker).
#pragma once

#include <napi.h>

namespace lvsio {

struct AddonData {
  Napi::FunctionReference linkCtor;
  // Private token: only the open functions can construct Link objects.
  Napi::ObjectReference token;
};

Napi::Value OpenTap(const Napi::CallbackInfo& info);
Napi::Value OpenRaw(const Napi::CallbackInfo& info);
// PACKET_FANOUT_DATA: set the fanout group's classic BPF program (rawsock.cc); throws on error.
void SetFanoutData(Napi::Env env, int fd, const uint8_t* bytes, size_t n, const std::string& ifname);
Napi::Value OpenTun(const Napi::CallbackInfo& info);
// xdp.cc: AF_XDP links, and the XDP program's instructions (for tests).
Napi::Value OpenXdp(const Napi::CallbackInfo& info);
Napi::Value XdpProgramWords(const Napi::CallbackInfo& info);
// sys.cc: host configuration in a namespace (sysctl, addresses, ethtool offloads, IPIP guard).
void InitSys(Napi::Env env, Napi::Object exports);

// bpf.cc: load a generated XDP program, run it on one frame (tests), close it.
Napi::Value BpfLoadXdp(const Napi::CallbackInfo& info);
Napi::Value BpfTestRun(const Napi::CallbackInfo& info);
Napi::Value BpfClose(const Napi::CallbackInfo& info);
Napi::Value BpfMapCreate(const Napi::CallbackInfo& info);
Napi::Value BpfMapUpdate(const Napi::CallbackInfo& info);
Napi::Value BpfMapDelete(const Napi::CallbackInfo& info);
Napi::Value BpfMapLookup(const Napi::CallbackInfo& info);
Napi::Value BpfMapMmap(const Napi::CallbackInfo& info);
Napi::Value BpfAttachXdp(const Napi::CallbackInfo& info);

}  // namespace lvsio
