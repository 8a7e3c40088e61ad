#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace lvsio {

const char* ErrnoName(int err) {
  switch (err) {
#define E(x) \
  case x:    \
    return #x;
    E(EPERM)
    E(ENOENT)
    E(EINTR)
    E(EIO)
    E(ENXIO)
    E(EBADF)
    E(EAGAIN)
    E(ENOMEM)
    E(EACCES)
    E(EFAULT)
    E(EBUSY)
    E(EEXIST)
    E(ENODEV)
    E(EINVAL)
    E(E2BIG)
    E(ENFILE)
    E(EMFILE)
    E(ENOSPC)
    E(ERANGE)
    E(ENAMETOOLONG)
    E(ENOSYS)
    E(ENOPROTOOPT)
    E(EPROTONOSUPPORT)
    E(EOPNOTSUPP)
    E(EAFNOSUPPORT)
    E(EADDRINUSE)
    E(ENETDOWN)
    E(ENOBUFS)
    E(EMSGSIZE)
    E(EBADFD)
#undef E
    default: {
      static thread_local char buf[16];
      snprintf(buf, sizeof buf, "E%d", err);
      return buf;
    }
  }
}

void ThrowErrno(Napi::Env env, const char* stage, const char* syscall, int err, const std::string& what) {
  std::string msg = what + ": " + syscall + " failed: " + strerror(err) + " (" + ErrnoName(err) + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.Set("stage", Napi::String::New(env, stage));
  throw e;
}

void Fd::Reset(int fd) {
  if (fd_ >= 0) close(fd_);
  fd_ = fd;
}

NetnsGuard::NetnsGuard(Napi::Env env, const std::string& path) {
  if (path.empty()) return;
  int target = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) ThrowErrno(env, "netns", "open", errno, "network namespace " + path);
  int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self < 0) {
    int err = errno;
    close(target);
    ThrowErrno(env, "netns", "open", err, "current network namespace (/proc/thread-self/ns/net)");
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    int err = errno;
    close(target);
    close(self);
    ThrowErrno(env, "netns", "setns", err, "network namespace " + path);
  }
  close(target);
  saved_ = self;
}

NetnsGuard::~NetnsGuard() {
  if (saved_ < 0) return;
  if (setns(saved_, CLONE_NEWNET) != 0) {
    // The main thread would be left in a foreign namespace: every later socket would be
    // created there. There is no safe way to continue.
    perror("lvs-io: cannot return to the original network namespace");
    abort();
  }
  close(saved_);
}

void SetIfName(Napi::Env env, struct ifreq& ifr, const std::string& name, const char* stage) {
  memset(&ifr, 0, sizeof ifr);
  if (name.empty() || name.size() >= IFNAMSIZ) {
    ThrowErrno(env, stage, "ifname", name.empty() ? EINVAL : ENAMETOOLONG,
               "interface name \"" + name + "\" (1.." + std::to_string(IFNAMSIZ - 1) + " bytes)");
  }
  memcpy(ifr.ifr_name, name.data(), name.size());
}

int ControlSocket(Napi::Env env, const char* stage) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) ThrowErrno(env, stage, "socket", errno, "control socket");
  return s;
}

int IfIndex(Napi::Env env, int ctl, const std::string& name, const char* stage) {
  struct ifreq ifr;
  SetIfName(env, ifr, name, stage);
  if (ioctl(ctl, SIOCGIFINDEX, &ifr) != 0) ThrowErrno(env, stage, "SIOCGIFINDEX", errno, "interface " + name);
  return ifr.ifr_ifindex;
}

void GetMac(Napi::Env env, int ctl, const std::string& name, uint8_t mac[6], const char* stage) {
  struct ifreq ifr;
  SetIfName(env, ifr, name, stage);
  if (ioctl(ctl, SIOCGIFHWADDR, &ifr) != 0) ThrowErrno(env, stage, "SIOCGIFHWADDR", errno, "interface " + name);
  memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
}

void SetMac(Napi::Env env, int ctl, const std::string& name, const uint8_t mac[6], const char* stage) {
  struct ifreq ifr;
  SetIfName(env, ifr, name, stage);
  ifr.ifr_hwaddr.sa_family = 1;  // ARPHRD_ETHER
  memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
  if (ioctl(ctl, SIOCSIFHWADDR, &ifr) != 0) ThrowErrno(env, stage, "SIOCSIFHWADDR", errno, "interface " + name);
}

int GetMtu(Napi::Env env, int ctl, const std::string& name, const char* stage) {
  struct ifreq ifr;
  SetIfName(env, ifr, name, stage);
  if (ioctl(ctl, SIOCGIFMTU, &ifr) != 0) ThrowErrno(env, stage, "SIOCGIFMTU", errno, "interface " + name);
  return ifr.ifr_mtu;
}

void SetMtu(Napi::Env env, int ctl, const std::string& name, int mtu, const char* stage) {
  struct ifreq ifr;
  SetIfName(env, ifr, name, stage);
  ifr.ifr_mtu = mtu;
  if (ioctl(ctl, SIOCSIFMTU, &ifr) != 0)
    ThrowErrno(env, stage, "SIOCSIFMTU", errno, "MTU " + std::to_string(mtu) + " on " + name);
}

void SetUp(Napi::Env env, int ctl, const std::string& name, const char* stage) {
  struct ifreq ifr;
  SetIfName(env, ifr, name, stage);
  if (ioctl(ctl, SIOCGIFFLAGS, &ifr) != 0) ThrowErrno(env, stage, "SIOCGIFFLAGS", errno, "interface " + name);
  if (ifr.ifr_flags & IFF_UP) return;
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(ctl, SIOCSIFFLAGS, &ifr) != 0) ThrowErrno(env, stage, "SIOCSIFFLAGS", errno, "bring up " + name);
}

std::string OptString(const Napi::Object& o, const char* key, const std::string& dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), std::string("option ") + key + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

bool OptBool(const Napi::Object& o, const char* key, bool dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string("option ") + key + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

int64_t OptInt(const Napi::Object& o, const char* key, int64_t dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), std::string("option ") + key + " must be a number");
  return v.As<Napi::Number>().Int64Value();
}

}  // namespace lvsio
