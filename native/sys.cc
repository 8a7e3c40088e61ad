// Host configuration inside a network namespace, for the control plane (lvs-realserver, labs):
//
//   sysctl(netns, path, value?)          read (and write) /proc/sys/<path>; returns the old value
//   ifIndex(netns, name)                 interface index (ENODEV when missing)
//   addrList(netns)                      IPv4 addresses: [{ ifindex, label, addr, prefix, scope }]
//   addrChange(netns, add, ifindex, addr, prefix, scope?)   RTM_NEWADDR (exclusive) / RTM_DELADDR
//   ethtool(netns, ifname, set)          offload flags (legacy ETHTOOL_[GS]{TXCSUM,SG,TSO,GSO,GRO});
//                                        returns the values before the change
//   ipipGuard(netns, addr, ifname)       a raw IPPROTO_IPIP socket that takes no packets (see below)
//   netnsId(netns)                       "cookie:<n>" (SO_NETNS_COOKIE, never reused until reboot)
//                                        or "ino:<dev>:<inode>" on kernels before 5.14
//   peerCred(fd)                         { pid, uid, gid } of the process at the other end of a
//                                        connected Unix socket (SO_PEERCRED: as it was when that
//                                        process connected); no namespace switch
//   adviseHugePages(arrayBuffer)         madvise(MADV_HUGEPAGE) over the whole 2 MiB pages inside
//                                        the buffer (the connection table's arrays: one TLB entry
//                                        per 2 MiB instead of 4 KiB); bytes advised, or -errno
//
// Every call runs with the calling thread switched into `netns` (NetnsGuard; "" = stay), which is
// what makes /proc/sys/net, rtnetlink and ioctls act on that namespace. Addresses cross as uint32
// numbers in host order. Failures throw errors with `code`/`stage`/`syscall` (common.h).
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/filter.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "addon.h"
#include "common.h"

namespace lvsio {

namespace {

std::string StrArg(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

uint32_t U32(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().Uint32Value();
}

// A sysctl path below /proc/sys: letters, digits and _ . - / only, no empty or dot-only parts.
bool GoodSysctlPath(const std::string& p) {
  if (p.empty() || p.size() > 200 || p.front() == '/' || p.back() == '/') return false;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    const std::string part = p.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    for (char c : part) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '.' || c == '-' || c == '@' || c == ':';
      if (!ok) return false;
    }
    start = end + 1;
  }
  return true;
}

Napi::Value Sysctl(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string netns = StrArg(info, 0, "netns");
  const std::string path = StrArg(info, 1, "path");
  const bool write = info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull();
  const std::string value = write ? StrArg(info, 2, "value") : "";
  if (!GoodSysctlPath(path)) ThrowErrno(env, "sysctl", "path", EINVAL, "sysctl path \"" + path + "\"");
  const std::string file = "/proc/sys/" + path;
  NetnsGuard ns(env, netns);
  // Open before reading so that the file is resolved in the target namespace.
  Fd fd(open(file.c_str(), (write ? O_RDWR : O_RDONLY) | O_CLOEXEC));
  if (!fd) ThrowErrno(env, "sysctl", "open", errno, file);
  std::string old;
  char buf[512];
  for (;;) {
    ssize_t r = read(fd.get(), buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) ThrowErrno(env, "sysctl", "read", errno, file);
    if (r == 0) break;
    old.append(buf, static_cast<size_t>(r));
  }
  while (!old.empty() && (old.back() == '\n' || old.back() == ' ')) old.pop_back();
  if (write) {
    const std::string line = value + "\n";
    ssize_t w;
    do {
      w = pwrite(fd.get(), line.data(), line.size(), 0);
    } while (w < 0 && errno == EINTR);
    if (w < 0) ThrowErrno(env, "sysctl", "write", errno, file + " = " + value);
  }
  return Napi::String::New(env, old);
}

Napi::Value IfIndexFn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string netns = StrArg(info, 0, "netns");
  const std::string name = StrArg(info, 1, "name");
  NetnsGuard ns(env, netns);
  Fd ctl(ControlSocket(env, "ifname"));
  return Napi::Number::New(env, IfIndex(env, ctl.get(), name, "ifname"));
}

// One rtnetlink request/answer exchange in the current namespace. `onMsg` sees every message of
// the answer; the call returns 0 or the negative errno of an NLMSG_ERROR.
template <typename F>
int RtnlTalk(Napi::Env env, void* req, size_t reqLen, F onMsg) {
  Fd s(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!s) ThrowErrno(env, "netlink", "socket(AF_NETLINK)", errno, "rtnetlink socket");
  struct timeval tv = {2, 0};
  setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  if (sendto(s.get(), req, reqLen, 0, reinterpret_cast<struct sockaddr*>(&sa), sizeof sa) < 0)
    ThrowErrno(env, "netlink", "sendto", errno, "rtnetlink request");
  std::vector<char> buf(32768);
  for (;;) {
    ssize_t r = recv(s.get(), buf.data(), buf.size(), 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) ThrowErrno(env, "netlink", "recv", errno, "rtnetlink answer");
    size_t left = static_cast<size_t>(r);
    for (auto* nh = reinterpret_cast<struct nlmsghdr*>(buf.data()); NLMSG_OK(nh, left); nh = NLMSG_NEXT(nh, left)) {
      if (nh->nlmsg_type == NLMSG_DONE) return 0;
      if (nh->nlmsg_type == NLMSG_ERROR) {
        auto* e = static_cast<struct nlmsgerr*>(NLMSG_DATA(nh));
        return e->error;  // 0 = ACK
      }
      onMsg(nh);
    }
  }
}

void AddAttr(struct nlmsghdr* nh, size_t cap, uint16_t type, const void* data, size_t len) {
  const size_t at = NLMSG_ALIGN(nh->nlmsg_len);
  if (at + RTA_LENGTH(len) > cap) return;  // requests below are sized for their attributes
  auto* rta = reinterpret_cast<struct rtattr*>(reinterpret_cast<char*>(nh) + at);
  rta->rta_type = type;
  rta->rta_len = static_cast<unsigned short>(RTA_LENGTH(len));
  memcpy(RTA_DATA(rta), data, len);
  nh->nlmsg_len = static_cast<uint32_t>(at + RTA_ALIGN(rta->rta_len));
}

Napi::Value AddrList(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string netns = StrArg(info, 0, "netns");
  NetnsGuard ns(env, netns);
  struct {
    struct nlmsghdr nh;
    struct ifaddrmsg ifa;
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = RTM_GETADDR;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nh.nlmsg_seq = 1;
  req.ifa.ifa_family = AF_INET;
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  int err = RtnlTalk(env, &req, sizeof req, [&](struct nlmsghdr* nh) {
    if (nh->nlmsg_type != RTM_NEWADDR) return;
    auto* ifa = static_cast<struct ifaddrmsg*>(NLMSG_DATA(nh));
    if (ifa->ifa_family != AF_INET) return;
    int alen = static_cast<int>(IFA_PAYLOAD(nh));
    uint32_t local = 0, address = 0;
    bool haveLocal = false, haveAddress = false;
    std::string label;
    for (auto* a = IFA_RTA(ifa); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
      if (a->rta_type == IFA_LOCAL && RTA_PAYLOAD(a) == 4) {
        memcpy(&local, RTA_DATA(a), 4);
        haveLocal = true;
      } else if (a->rta_type == IFA_ADDRESS && RTA_PAYLOAD(a) == 4) {
        memcpy(&address, RTA_DATA(a), 4);
        haveAddress = true;
      } else if (a->rta_type == IFA_LABEL) {
        label.assign(static_cast<const char*>(RTA_DATA(a)), strnlen(static_cast<const char*>(RTA_DATA(a)), RTA_PAYLOAD(a)));
      }
    }
    if (!haveLocal && !haveAddress) return;
    Napi::Object o = Napi::Object::New(env);
    o.Set("ifindex", Napi::Number::New(env, ifa->ifa_index));
    o.Set("label", Napi::String::New(env, label));
    o.Set("addr", Napi::Number::New(env, ntohl(haveLocal ? local : address)));
    o.Set("prefix", Napi::Number::New(env, ifa->ifa_prefixlen));
    o.Set("scope", Napi::Number::New(env, ifa->ifa_scope));
    out.Set(n++, o);
  });
  if (err < 0) ThrowErrno(env, "netlink", "RTM_GETADDR", -err, "list IPv4 addresses");
  return out;
}

Napi::Value AddrChange(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string netns = StrArg(info, 0, "netns");
  if (info.Length() < 5 || !info[1].IsBoolean())
    throw Napi::TypeError::New(env, "addrChange(netns, add, ifindex, addr, prefix, scope?)");
  const bool add = info[1].As<Napi::Boolean>().Value();
  const uint32_t ifindex = U32(info, 2, "ifindex");
  const uint32_t addr = htonl(U32(info, 3, "addr"));
  const uint32_t prefix = U32(info, 4, "prefix");
  if (prefix > 32) throw Napi::RangeError::New(env, "prefix must be 0..32");
  const uint32_t scope = info.Length() > 5 && info[5].IsNumber() ? U32(info, 5, "scope") : static_cast<uint32_t>(RT_SCOPE_UNIVERSE);
  if (scope > 255) throw Napi::RangeError::New(env, "scope must be 0..255");
  NetnsGuard ns(env, netns);
  struct {
    struct nlmsghdr nh;
    struct ifaddrmsg ifa;
    char attrs[64];
  } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
  req.nh.nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
  req.nh.nlmsg_seq = 1;
  req.ifa.ifa_family = AF_INET;
  req.ifa.ifa_prefixlen = static_cast<unsigned char>(prefix);
  req.ifa.ifa_scope = static_cast<unsigned char>(scope);
  req.ifa.ifa_index = ifindex;
  AddAttr(&req.nh, sizeof req, IFA_LOCAL, &addr, 4);
  AddAttr(&req.nh, sizeof req, IFA_ADDRESS, &addr, 4);
  char text[INET_ADDRSTRLEN] = "?";
  inet_ntop(AF_INET, &addr, text, sizeof text);
  int err = RtnlTalk(env, &req, req.nh.nlmsg_len, [](struct nlmsghdr*) {});
  if (err < 0) {
    ThrowErrno(env, "addr", add ? "RTM_NEWADDR" : "RTM_DELADDR", -err,
               std::string(add ? "add " : "delete ") + text + "/" + std::to_string(prefix) + " on ifindex " +
                   std::to_string(ifindex));
  }
  return env.Undefined();
}

struct Offload {
  const char* key;
  uint32_t get, set;
};
constexpr Offload kOffloads[] = {
    {"txCsum", ETHTOOL_GTXCSUM, ETHTOOL_STXCSUM}, {"sg", ETHTOOL_GSG, ETHTOOL_SSG},
    {"tso", ETHTOOL_GTSO, ETHTOOL_STSO},          {"gso", ETHTOOL_GGSO, ETHTOOL_SGSO},
    {"gro", ETHTOOL_GGRO, ETHTOOL_SGRO},
};

Napi::Value Ethtool(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string netns = StrArg(info, 0, "netns");
  const std::string name = StrArg(info, 1, "ifname");
  if (info.Length() < 3 || !info[2].IsObject()) throw Napi::TypeError::New(env, "ethtool(netns, ifname, set)");
  Napi::Object set = info[2].As<Napi::Object>();
  struct ifreq probe;
  SetIfName(env, probe, name, "ifname");
  NetnsGuard ns(env, netns);
  Fd ctl(ControlSocket(env, "ifname"));
  IfIndex(env, ctl.get(), name, "ifname");  // ENODEV with a clear message first
  auto call = [&](uint32_t cmd, uint32_t data, uint32_t* out) -> int {
    struct ethtool_value ev = {cmd, data};
    struct ifreq ifr;
    SetIfName(env, ifr, name, "ethtool");
    ifr.ifr_data = reinterpret_cast<char*>(&ev);
    if (ioctl(ctl.get(), SIOCETHTOOL, &ifr) != 0) return errno;
    if (out != nullptr) *out = ev.data;
    return 0;
  };
  Napi::Object before = Napi::Object::New(env);
  for (const Offload& f : kOffloads) {
    uint32_t v = 0;
    const int err = call(f.get, 0, &v);
    before.Set(f.key, err == 0 ? Napi::Value(Napi::Boolean::New(env, v != 0)) : env.Null());
  }
  for (const Offload& f : kOffloads) {
    Napi::Value want = set.Get(f.key);
    if (want.IsUndefined() || want.IsNull()) continue;
    if (!want.IsBoolean()) throw Napi::TypeError::New(env, std::string("ethtool: ") + f.key + " must be a boolean");
    const bool on = want.As<Napi::Boolean>().Value();
    Napi::Value had = before.Get(f.key);
    if (had.IsBoolean() && had.As<Napi::Boolean>().Value() == on) continue;
    const int err = call(f.set, on ? 1 : 0, nullptr);
    // Turning a feature off that the device cannot change is not an error: it was never on.
    if (err != 0 && !(err == EOPNOTSUPP && !on))
      ThrowErrno(env, "ethtool", "SIOCETHTOOL", err, std::string("set ") + f.key + (on ? " on" : " off") + " on " + name);
  }
  return before;
}

// A raw IPv4 socket for protocol 4 (IPIP), bound to `addr` and `ifname`, whose filter drops
// everything. Linux hands a locally delivered packet to every matching raw socket and, for a
// protocol without a kernel handler (no ipip module), sends ICMP protocol-unreachable only when
// *no* raw socket matched (ip_protocol_deliver_rcu). Holding this socket therefore silences those
// ICMP errors for exactly the decapsulator's address and interface, for exactly as long as the
// decapsulator runs: nothing to clean up if it dies, no firewall rule, no extra package.
Napi::Value IpipGuard(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string netns = StrArg(info, 0, "netns");
  const uint32_t addr = htonl(U32(info, 1, "addr"));
  const std::string ifname = info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
  NetnsGuard ns(env, netns);
  Fd s(socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_IPIP));
  if (!s) ThrowErrno(env, "guard", "socket(AF_INET, SOCK_RAW, IPPROTO_IPIP)", errno, "IPIP guard socket");
  struct sock_filter drop[] = {{BPF_RET | BPF_K, 0, 0, 0}};
  struct sock_fprog fp = {1, drop};
  if (setsockopt(s.get(), SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp) != 0)
    ThrowErrno(env, "guard", "setsockopt(SO_ATTACH_FILTER)", errno, "IPIP guard socket");
  const int small = 1;
  setsockopt(s.get(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  if (!ifname.empty()) {
    if (ifname.size() >= IFNAMSIZ) ThrowErrno(env, "ifname", "ifname", ENAMETOOLONG, "interface " + ifname);
    if (setsockopt(s.get(), SOL_SOCKET, SO_BINDTODEVICE, ifname.c_str(), static_cast<socklen_t>(ifname.size())) != 0)
      ThrowErrno(env, errno == ENODEV ? "ifname" : "guard", "setsockopt(SO_BINDTODEVICE)", errno, "interface " + ifname);
  }
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = addr;
  if (bind(s.get(), reinterpret_cast<struct sockaddr*>(&sin), sizeof sin) != 0) {
    char text[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &addr, text, sizeof text);
    ThrowErrno(env, "guard", "bind", errno, std::string("IPIP guard socket on ") + text);
  }
  return Napi::Number::New(env, s.release());
}

Napi::Value NetnsId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string netns = StrArg(info, 0, "netns");
  NetnsGuard ns(env, netns);
#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
  Fd s(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) ThrowErrno(env, "netns", "socket", errno, "socket for the namespace cookie");
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (getsockopt(s.get(), SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) == 0 && len == sizeof cookie)
    return Napi::String::New(env, "cookie:" + std::to_string(cookie));
  struct stat st;
  if (stat("/proc/thread-self/ns/net", &st) != 0)
    ThrowErrno(env, "netns", "stat", errno, "/proc/thread-self/ns/net");
  return Napi::String::New(env, "ino:" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino));
}

// SO_PEERCRED on a connected Unix socket: the peer's credentials as the kernel recorded them at
// connect() (lvsd's control socket logs who changed the director). Node exposes the descriptor
// of an accepted socket but not this option.
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw Napi::TypeError::New(env, "peerCred(fd): fd must be a number");
  const int fd = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred;
  memset(&cred, 0, sizeof cred);
  socklen_t len = sizeof cred;
  if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred)
    ThrowErrno(env, "peercred", "getsockopt(SO_PEERCRED)", fd < 0 ? EBADF : (errno != 0 ? errno : EINVAL),
               "peer credentials of fd " + std::to_string(fd));
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", Napi::Number::New(env, cred.pid));
  o.Set("uid", Napi::Number::New(env, cred.uid));
  o.Set("gid", Napi::Number::New(env, cred.gid));
  return o;
}

}  // namespace

// Transparent huge pages for a large ArrayBuffer. Where THP is in `madvise` mode (Debian's
// default) memory from malloc gets 4 KiB pages unless advised; advice given before the pages are
// first touched makes the faults allocate 2 MiB pages. Only whole huge pages inside the buffer
// are advised (the ends share pages with other allocations). No namespace switch.
Napi::Value AdviseHugePages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer())
    throw Napi::TypeError::New(env, "adviseHugePages(arrayBuffer)");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  const uintptr_t huge = uintptr_t{2} << 20;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(ab.Data());
  const uintptr_t a = (begin + huge - 1) & ~(huge - 1);
  const uintptr_t b = (begin + ab.ByteLength()) & ~(huge - 1);
  if (ab.Data() == nullptr || b <= a) return Napi::Number::New(env, 0);
  if (madvise(reinterpret_cast<void*>(a), b - a, MADV_HUGEPAGE) != 0) return Napi::Number::New(env, -errno);
  return Napi::Number::New(env, static_cast<double>(b - a));
}

void InitSys(Napi::Env env, Napi::Object exports) {
  exports.Set("sysctl", Napi::Function::New(env, Sysctl, "sysctl"));
  exports.Set("ifIndex", Napi::Function::New(env, IfIndexFn, "ifIndex"));
  exports.Set("addrList", Napi::Function::New(env, AddrList, "addrList"));
  exports.Set("addrChange", Napi::Function::New(env, AddrChange, "addrChange"));
  exports.Set("ethtool", Napi::Function::New(env, Ethtool, "ethtool"));
  exports.Set("ipipGuard", Napi::Function::New(env, IpipGuard, "ipipGuard"));
  exports.Set("netnsId", Napi::Function::New(env, NetnsId, "netnsId"));
  exports.Set("peerCred", Napi::Function::New(env, PeerCred, "peerCred"));
  // optional on the JS side (no ABI bump): an older build simply lacks it
  exports.Set("adviseHugePages", Napi::Function::New(env, AdviseHugePages, "adviseHugePages"));
}

}  // namespace lvsio
