// Generic eBPF program loading and test runs, for programs generated in JavaScript
// (src/datapath/io/bpf/): the groundwork of the XDP SYN-cookie responder (issue 14).
//
//   bpfLoadXdp(insns: Uint8Array, name: string) -> fd      BPF_PROG_LOAD (XDP); a refusal throws
//                                                          with the end of the verifier's log
//   bpfTestRun(fd, data: Uint8Array, out: Uint8Array) -> { retval, size }
//                                                          BPF_PROG_TEST_RUN: the program on one
//                                                          frame; `out` receives the frame after it
//   bpfMapCreate(type, keySize, valueSize, maxEntries, name) -> fd
//   bpfMapUpdate(fd, key: Uint8Array, value: Uint8Array)    BPF_MAP_UPDATE_ELEM (BPF_ANY)
//   bpfMapDelete(fd, key: Uint8Array) -> boolean          BPF_MAP_DELETE_ELEM (false: no such key)
//   bpfMapLookup(fd, key, value: Uint8Array) -> boolean    BPF_MAP_LOOKUP_ELEM into `value`
//   bpfMapMmap(fd, bytes) -> ArrayBuffer                   the values of a BPF_F_MMAPABLE array,
//                                                          mapped shared (unmapped when collected)
//   bpfAttachXdp(progFd, ifname, attach) -> { fd, driverMode }
//                                                          the program on the interface by a
//                                                          bpf_link ("auto" | "drv" | "skb")
//   bpfClose(fd)
#include <linux/bpf.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <net/if.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "addon.h"
#include "common.h"
#include "xdp.h"

namespace lvsio {

namespace {
long BpfCall(int cmd, union bpf_attr* attr, unsigned size) { return syscall(__NR_bpf, cmd, attr, size); }

// BPF_MAP_{UPDATE,DELETE,LOOKUP}_ELEM on map `fd` (value may be null); errno is the call's.
long MapElem(int cmd, uint32_t fd, const void* key, void* value, uint64_t flags) {
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_fd = fd;
  a.key = reinterpret_cast<uint64_t>(key);
  a.value = reinterpret_cast<uint64_t>(value);
  a.flags = flags;
  return BpfCall(cmd, &a, sizeof a);
}
}  // namespace

Napi::Value BpfLoadXdp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsString())
    throw Napi::TypeError::New(env, "bpfLoadXdp(insns: Uint8Array, name: string)");
  Napi::Uint8Array insns = info[0].As<Napi::Uint8Array>();
  if (insns.ByteLength() == 0 || insns.ByteLength() % 8 != 0 || insns.ByteLength() > 8 * 1000000)
    throw Napi::RangeError::New(env, "bpfLoadXdp: insns must be a whole number of 8-byte instructions");
  std::vector<uint8_t> copy(insns.Data(), insns.Data() + insns.ByteLength());  // 8-byte aligned
  std::string name = info[1].As<Napi::String>().Utf8Value();
  static const char kLicense[] = "Dual MIT/GPL";
  std::vector<char> log(1 << 20, 0);
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.prog_type = BPF_PROG_TYPE_XDP;
  a.insn_cnt = static_cast<uint32_t>(copy.size() / 8);
  a.insns = reinterpret_cast<uint64_t>(copy.data());
  a.license = reinterpret_cast<uint64_t>(kLicense);
  a.expected_attach_type = BPF_XDP;
  a.log_level = 1;
  a.log_buf = reinterpret_cast<uint64_t>(log.data());
  a.log_size = static_cast<uint32_t>(log.size());
  strncpy(a.prog_name, name.c_str(), sizeof a.prog_name - 1);
  const int fd = static_cast<int>(BpfCall(BPF_PROG_LOAD, &a, sizeof a));
  if (fd < 0) {
    const int err = errno;
    std::string v(log.data());
    if (v.size() > 1500) v = "..." + v.substr(v.size() - 1500);
    ThrowErrno(env, "bpf-prog", "bpf(BPF_PROG_LOAD, XDP)", err, name + (v.empty() ? "" : " [verifier: " + v + "]"));
  }
  return Napi::Number::New(env, fd);
}

Napi::Value BpfTestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsTypedArray() || !info[2].IsTypedArray())
    throw Napi::TypeError::New(env, "bpfTestRun(fd, data: Uint8Array, out: Uint8Array)");
  const int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
  Napi::Uint8Array out = info[2].As<Napi::Uint8Array>();
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.test.prog_fd = static_cast<uint32_t>(fd);
  a.test.data_in = reinterpret_cast<uint64_t>(data.Data());
  a.test.data_size_in = static_cast<uint32_t>(data.ByteLength());
  a.test.data_out = reinterpret_cast<uint64_t>(out.Data());
  a.test.data_size_out = static_cast<uint32_t>(out.ByteLength());
  a.test.repeat = 1;
  if (BpfCall(BPF_PROG_TEST_RUN, &a, sizeof a) < 0)
    ThrowErrno(env, "bpf-test", "bpf(BPF_PROG_TEST_RUN)", errno, "test run");
  Napi::Object r = Napi::Object::New(env);
  r.Set("retval", Napi::Number::New(env, a.test.retval));
  r.Set("size", Napi::Number::New(env, a.test.data_size_out));
  return r;
}

Napi::Value BpfMapCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[4].IsString())
    throw Napi::TypeError::New(env, "bpfMapCreate(type, keySize, valueSize, maxEntries, name)");
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  a.map_type = info[0].As<Napi::Number>().Uint32Value();
  a.key_size = info[1].As<Napi::Number>().Uint32Value();
  a.value_size = info[2].As<Napi::Number>().Uint32Value();
  a.max_entries = info[3].As<Napi::Number>().Uint32Value();
  if (info.Length() > 5 && info[5].IsNumber()) a.map_flags = info[5].As<Napi::Number>().Uint32Value();
  std::string name = info[4].As<Napi::String>().Utf8Value();
  strncpy(a.map_name, name.c_str(), sizeof a.map_name - 1);
  const int fd = static_cast<int>(BpfCall(BPF_MAP_CREATE, &a, sizeof a));
  if (fd < 0) ThrowErrno(env, "bpf-map", "bpf(BPF_MAP_CREATE)", errno, name);
  return Napi::Number::New(env, fd);
}

Napi::Value BpfMapUpdate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsTypedArray() || !info[2].IsTypedArray())
    throw Napi::TypeError::New(env, "bpfMapUpdate(fd, key: Uint8Array, value: Uint8Array)");
  Napi::Uint8Array key = info[1].As<Napi::Uint8Array>();
  Napi::Uint8Array value = info[2].As<Napi::Uint8Array>();
  if (MapElem(BPF_MAP_UPDATE_ELEM, info[0].As<Napi::Number>().Uint32Value(), key.Data(), value.Data(), BPF_ANY) < 0)
    ThrowErrno(env, "bpf-map", "bpf(BPF_MAP_UPDATE_ELEM)", errno, "map update");
  return env.Undefined();
}

Napi::Value BpfMapDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsTypedArray())
    throw Napi::TypeError::New(env, "bpfMapDelete(fd, key: Uint8Array)");
  Napi::Uint8Array key = info[1].As<Napi::Uint8Array>();
  if (MapElem(BPF_MAP_DELETE_ELEM, info[0].As<Napi::Number>().Uint32Value(), key.Data(), nullptr, 0) < 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    ThrowErrno(env, "bpf-map", "bpf(BPF_MAP_DELETE_ELEM)", errno, "map delete");
  }
  return Napi::Boolean::New(env, true);
}

Napi::Value BpfMapLookup(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsTypedArray() || !info[2].IsTypedArray())
    throw Napi::TypeError::New(env, "bpfMapLookup(fd, key: Uint8Array, value: Uint8Array)");
  Napi::Uint8Array key = info[1].As<Napi::Uint8Array>();
  Napi::Uint8Array value = info[2].As<Napi::Uint8Array>();
  if (MapElem(BPF_MAP_LOOKUP_ELEM, info[0].As<Napi::Number>().Uint32Value(), key.Data(), value.Data(), 0) < 0) {
    if (errno == ENOENT) return Napi::Boolean::New(env, false);
    ThrowErrno(env, "bpf-map", "bpf(BPF_MAP_LOOKUP_ELEM)", errno, "map lookup");
  }
  return Napi::Boolean::New(env, true);
}

Napi::Value BpfMapMmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber())
    throw Napi::TypeError::New(env, "bpfMapMmap(fd, bytes)");
  const int fd = info[0].As<Napi::Number>().Int32Value();
  const int64_t bytes = info[1].As<Napi::Number>().Int64Value();
  if (bytes <= 0 || bytes > (int64_t{1} << 30)) throw Napi::RangeError::New(env, "bpfMapMmap: bytes must be in 1..2^30");
  void* p = mmap(nullptr, static_cast<size_t>(bytes), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) ThrowErrno(env, "bpf-map", "mmap", errno, "map values");
  const size_t len = static_cast<size_t>(bytes);
  return Napi::ArrayBuffer::New(env, p, len, [len](Napi::Env, void* data) { munmap(data, len); });
}

Napi::Value BpfAttachXdp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsString() || !info[2].IsString())
    throw Napi::TypeError::New(env, "bpfAttachXdp(progFd, ifname, attach: 'auto' | 'drv' | 'skb')");
  const int prog = info[0].As<Napi::Number>().Int32Value();
  const std::string ifname = info[1].As<Napi::String>().Utf8Value();
  const std::string attach = info[2].As<Napi::String>().Utf8Value();
  if (attach != "auto" && attach != "drv" && attach != "skb")
    throw Napi::TypeError::New(env, "bpfAttachXdp: attach must be auto, drv or skb");
  const unsigned ifindex = if_nametoindex(ifname.c_str());
  if (ifindex == 0) ThrowErrno(env, "ifindex", "if_nametoindex", errno, ifname);
  bool drv = false;
  const int fd = AttachXdpLink(env, prog, static_cast<int>(ifindex), attach, ifname, &drv);
  Napi::Object r = Napi::Object::New(env);
  r.Set("fd", Napi::Number::New(env, fd));
  r.Set("driverMode", Napi::Boolean::New(env, drv));
  return r;
}

Napi::Value BpfClose(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && info[0].IsNumber()) {
    const int fd = info[0].As<Napi::Number>().Int32Value();
    if (fd > 2) close(fd);
  }
  return info.Env().Undefined();
}

}  // namespace lvsio
