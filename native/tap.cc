// TAP devices: /dev/net/tun with IFF_TAP | IFF_NO_PI, non-blocking.
//
// create=true, exclusive=true  -> a new device (IFF_TUN_EXCL: EBUSY if any device already has
//                                 the name); removed when we close it unless persist=true.
// create=true, exclusive=false -> create it if missing, else attach to the existing TAP.
// create=false                 -> attach to an existing (persistent) TAP; ENODEV if there is
//                                 none. Attaching gives EBUSY if another process holds it, and
//                                 EINVAL if the name belongs to a device that is not a TAP.
// A device we did not create is left in place on close.
//
// TUN devices (OpenTun): the same with IFF_TUN | IFF_NO_PI, so each read()/write() is one bare IP
// packet. The userspace IPIP decapsulator writes inner packets into one to hand them to the
// local stack.
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addon.h"
#include "common.h"
#include "link.h"

namespace lvsio {

static int OpenRtnl() {
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (s < 0) return -1;
  struct timeval tv = {0, 200000};  // never hang the control plane on a stats query
  setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return s;
}

// The part of opening a TAP or a TUN device that is the same for both: attach-or-create by name
// with the create/exclusive rules above, set the MTU. `kind` is "TAP" or "TUN" for messages.
static int OpenTunTapFd(Napi::Env env, const std::string& name, short type, const char* kind, bool create,
                       bool exclusive, int64_t mtu, int ctl, bool* existed, std::string* actual) {
  struct ifreq ifr;
  SetIfName(env, ifr, name, "tunsetiff");
  *existed = if_nametoindex(name.c_str()) != 0;
  if (!create && !*existed) {
    ThrowErrno(env, "attach", "if_nametoindex", ENODEV,
               std::string(kind) + " device " + name + " does not exist (create: false)");
  }
  Fd fd(open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd) ThrowErrno(env, "tun", "open", errno, "/dev/net/tun");
  ifr.ifr_flags = type | IFF_NO_PI | (create && exclusive ? IFF_TUN_EXCL : 0);
  if (ioctl(fd.get(), TUNSETIFF, &ifr) != 0) {
    int err = errno;
    if (err == EINVAL && *existed) {
      ThrowErrno(env, "tunsetiff", "TUNSETIFF", err, "device " + name + " exists but is not a " + kind);
    }
    ThrowErrno(env, "tunsetiff", "TUNSETIFF", err, std::string(kind) + " device " + name);
  }
  actual->assign(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));
  if (mtu > 0) SetMtu(env, ctl, *actual, static_cast<int>(mtu), "mtu");
  return fd.release();
}

Napi::Value OpenTap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "openTap(options)");
  Napi::Object o = info[0].As<Napi::Object>();
  const std::string name = OptString(o, "name");
  const bool create = OptBool(o, "create", true);
  const bool exclusive = OptBool(o, "exclusive", create);
  const bool persist = OptBool(o, "persist", false);
  const bool up = OptBool(o, "up", true);
  const int64_t mtu = OptInt(o, "mtu", 0);
  const std::string bridge = OptString(o, "bridge");
  const std::string netns = OptString(o, "netns");
  Napi::Value ifaceMacV = o.Get("ifaceMac");
  if (!ifaceMacV.IsUndefined() && !(ifaceMacV.IsTypedArray() && ifaceMacV.As<Napi::Uint8Array>().ElementLength() == 6))
    throw Napi::TypeError::New(env, "option ifaceMac must be a 6-byte Uint8Array");

  NetnsGuard ns(env, netns);
  Fd ctl(ControlSocket(env, "tun"));
  bool existed = false;
  std::string actual;
  Fd fd(OpenTunTapFd(env, name, IFF_TAP, "TAP", create, exclusive, mtu, ctl.get(), &existed, &actual));
  if (!ifaceMacV.IsUndefined()) SetMac(env, ctl.get(), actual, ifaceMacV.As<Napi::Uint8Array>().Data(), "mac");
  const int ifindex = IfIndex(env, ctl.get(), actual, "tunsetiff");

  if (!bridge.empty()) {
    struct ifreq br;
    SetIfName(env, br, bridge, "bridge");
    if (if_nametoindex(bridge.c_str()) == 0) {
      ThrowErrno(env, "bridge", "if_nametoindex", ENODEV, "bridge " + bridge + " does not exist");
    }
    br.ifr_ifindex = ifindex;
    if (ioctl(ctl.get(), SIOCBRADDIF, &br) != 0) {
      int err = errno;
      ThrowErrno(env, "bridge", "SIOCBRADDIF", err,
                 err == EOPNOTSUPP ? bridge + " is not a bridge" : "add " + actual + " to bridge " + bridge);
    }
  }
  if (up) SetUp(env, ctl.get(), actual, "up");
  if (persist && ioctl(fd.get(), TUNSETPERSIST, 1) != 0) {
    ThrowErrno(env, "persist", "TUNSETPERSIST", errno, "TAP device " + actual);
  }

  Napi::Object obj = Link::Create(env);
  Link* link = Link::Unwrap(obj);
  link->kind = LinkKind::kTap;
  link->name = actual;
  link->ifindex = ifindex;
  GetMac(env, ctl.get(), actual, link->mac, "mac");
  link->mtu = GetMtu(env, ctl.get(), actual, "mtu");
  link->created = !existed;
  link->nlfd = OpenRtnl();  // in the TAP's namespace, for its tx_dropped counter
  link->fd = fd.release();
  link->Publish();
  return obj;
}

Napi::Value OpenTun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "openTun(options)");
  Napi::Object o = info[0].As<Napi::Object>();
  const std::string name = OptString(o, "name");
  const bool create = OptBool(o, "create", true);
  const bool exclusive = OptBool(o, "exclusive", create);
  const bool up = OptBool(o, "up", true);
  const int64_t mtu = OptInt(o, "mtu", 0);
  const std::string netns = OptString(o, "netns");

  NetnsGuard ns(env, netns);
  Fd ctl(ControlSocket(env, "tun"));
  bool existed = false;
  std::string actual;
  Fd fd(OpenTunTapFd(env, name, IFF_TUN, "TUN", create, exclusive, mtu, ctl.get(), &existed, &actual));
  const int ifindex = IfIndex(env, ctl.get(), actual, "tunsetiff");
  if (up) SetUp(env, ctl.get(), actual, "up");

  Napi::Object obj = Link::Create(env);
  Link* link = Link::Unwrap(obj);
  link->kind = LinkKind::kTun;
  link->name = actual;
  link->ifindex = ifindex;
  link->mtu = GetMtu(env, ctl.get(), actual, "mtu");
  link->created = !existed;
  link->nlfd = OpenRtnl();
  link->fd = fd.release();
  link->Publish();
  return obj;
}

}  // namespace lvsio
