// Shared helpers for the lvs-ts I/O addon: errno-carrying JS errors, network-namespace
// switching, and small ioctl wrappers on interface names.
//
// Errors thrown to JS carry `code` (the errno name, e.g. "EBUSY"), `errno` (positive number),
// `syscall` and `stage` (which step of opening failed: "tun", "tunsetiff", "bridge", ...).
// src/datapath/io/link.ts maps (stage, code) to the project's stable IoError codes.
#pragma once

#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include <net/if.h>

namespace lvsio {

// Name of an errno value ("EBUSY"), or "E<n>" when unknown.
const char* ErrnoName(int err);

// Build and throw a JS Error for a failed system call.
[[noreturn]] void ThrowErrno(Napi::Env env, const char* stage, const char* syscall, int err,
                             const std::string& what);

// Owns a file descriptor; closes it unless released.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void Reset(int fd = -1);
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Switches the calling thread into a network namespace for the lifetime of the object and
// switches it back on destruction. An empty path means "stay where we are". Sockets and the
// /dev/net/tun file opened meanwhile stay bound to the target namespace after switching back.
// Only the calling (main) thread moves: libuv's worker threads are unaffected.
class NetnsGuard {
 public:
  NetnsGuard(Napi::Env env, const std::string& path);
  NetnsGuard(const NetnsGuard&) = delete;
  NetnsGuard& operator=(const NetnsGuard&) = delete;
  ~NetnsGuard();

 private:
  int saved_ = -1;
};

// Fill an ifreq with a name; throws ENAMETOOLONG-style error when the name does not fit.
void SetIfName(Napi::Env env, struct ifreq& ifr, const std::string& name, const char* stage);

// A throwaway AF_INET datagram socket for SIOC* ioctls in the current namespace.
int ControlSocket(Napi::Env env, const char* stage);

// Interface helpers on a control socket (current namespace). Throw on failure.
int IfIndex(Napi::Env env, int ctl, const std::string& name, const char* stage);
void GetMac(Napi::Env env, int ctl, const std::string& name, uint8_t mac[6], const char* stage);
void SetMac(Napi::Env env, int ctl, const std::string& name, const uint8_t mac[6], const char* stage);
int GetMtu(Napi::Env env, int ctl, const std::string& name, const char* stage);
void SetMtu(Napi::Env env, int ctl, const std::string& name, int mtu, const char* stage);
void SetUp(Napi::Env env, int ctl, const std::string& name, const char* stage);

// Option readers for plain JS objects.
std::string OptString(const Napi::Object& o, const char* key, const std::string& dflt = "");
bool OptBool(const Napi::Object& o, const char* key, bool dflt);
int64_t OptInt(const Napi::Object& o, const char* key, int64_t dflt);

}  // namespace lvsio
