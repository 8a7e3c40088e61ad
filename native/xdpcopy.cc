// xdpCopy(a, b, ms, busy): the AF_XDP I/O ceiling for the end-to-end benchmark (bench/e2e/xdpcopy.ts).
//
// Two AF_XDP links on one UMEM (b opened with `share: a`); for `ms` milliseconds, in this thread
// and without returning to JavaScript, every frame received on one link is sent out of the other
// by descriptor, untouched: the same ring calls lvsd's loop makes (RxView, Tx, Kick, Release)
// with nothing between them. Whatever lvsd forwards over AF_XDP on this machine can at best match
// it, as tapcopy is the ceiling for TAP. Without `busy` it sleeps in poll() until a socket is
// readable (as lvsd's event loop does); with it, it never sleeps and each receive first runs the
// queue's NAPI poll (the links' busyPoll option).
//
// Returns { aToB, bToA, rounds, fullRounds, txDropped } for this call (fullRounds: rounds in which a
// link's RX ring gave a whole batch, i.e. the copier is behind).
#include <poll.h>
#include <time.h>

#include <cstring>
#include <vector>

#include "addon.h"
#include "link.h"
#include "xdp.h"

namespace lvsio {

namespace {

constexpr uint32_t kBatch = 256;

uint64_t NowMs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

Link* XdpLinkArg(Napi::Env env, const Napi::Value& v, const char* what) {
  AddonData* data = env.GetInstanceData<AddonData>();
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(data->linkCtor.Value()))
    throw Napi::TypeError::New(env, std::string("xdpCopy: ") + what + " must be a link");
  Link* l = Napi::ObjectWrap<Link>::Unwrap(v.As<Napi::Object>());
  if (l->kind != LinkKind::kXdp || l->xsk == nullptr || l->fd < 0)
    throw Napi::TypeError::New(env, std::string("xdpCopy: ") + what + " must be an open AF_XDP link");
  return l;
}

}  // namespace

Napi::Value XdpCopy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4) throw Napi::TypeError::New(env, "xdpCopy(a, b, ms, busy)");
  Link* la = XdpLinkArg(env, info[0], "a");
  Link* lb = XdpLinkArg(env, info[1], "b");
  if (la == lb || la->xsk->pool != lb->xsk->pool || !la->xsk->pool->viewable)
    throw Napi::TypeError::New(env, "xdpCopy: b must share a's UMEM (openXdp share), lent to JS (view)");
  if (!info[2].IsNumber()) throw Napi::TypeError::New(env, "xdpCopy: ms must be a number");
  const double msArg = info[2].As<Napi::Number>().DoubleValue();
  if (!(msArg >= 0 && msArg <= 3600e3)) throw Napi::RangeError::New(env, "xdpCopy: ms must be in 0..3600000");
  const bool busy = info[3].ToBoolean().Value();

  Xsk* a = la->xsk;
  Xsk* b = lb->xsk;
  uint8_t* umem = a->umem;
  const size_t umemLen = a->umemLen;
  std::vector<uint32_t> off(2 * kBatch), len(2 * kBatch);
  std::vector<int16_t> egress(2 * kBatch);
  uint64_t sta[kStatCount] = {0}, stb[kStatCount] = {0};
  struct pollfd pfd[2] = {{a->fd, POLLIN, 0}, {b->fd, POLLIN, 0}};
  uint64_t aToB = 0, bToA = 0, rounds = 0, fullRounds = 0;
  const uint64_t end = NowMs() + static_cast<uint64_t>(msArg);
  for (;;) {
    // the clock is read every 64 rounds while frames come, at every idle wake-up otherwise
    if ((rounds & 63) == 0 && NowMs() >= end) break;
    if (!busy) {
      const int r = poll(pfd, 2, 10);
      if (r <= 0) {
        rounds = (rounds | 63) + 1;  // look at the clock
        continue;
      }
    }
    int32_t na = a->RxView(off.data(), len.data(), 0, kBatch, sta);
    if (na < 0) na = 0;
    int32_t nb = b->RxView(off.data(), len.data(), static_cast<uint32_t>(na), kBatch, stb);
    if (nb < 0) nb = 0;
    rounds++;
    const uint32_t n = static_cast<uint32_t>(na + nb);
    if (n == 0) continue;
    if (na == static_cast<int32_t>(kBatch) || nb == static_cast<int32_t>(kBatch)) fullRounds++;
    for (uint32_t i = 0; i < n; i++) egress[i] = i < static_cast<uint32_t>(na) ? 1 : 0;
    if (na > 0) {
      aToB += b->Tx(umem, umemLen, off.data(), len.data(), egress.data(), n, 1, stb);
      b->Kick(stb);
    }
    if (nb > 0) {
      bToA += a->Tx(umem, umemLen, off.data(), len.data(), egress.data(), n, 0, sta);
      a->Kick(sta);
    }
    a->Release();  // the pool's: both links' held frames not sent go back
  }
  a->Release();
  Napi::Object out = Napi::Object::New(env);
  out.Set("aToB", Napi::Number::New(env, static_cast<double>(aToB)));
  out.Set("bToA", Napi::Number::New(env, static_cast<double>(bToA)));
  out.Set("rounds", Napi::Number::New(env, static_cast<double>(rounds)));
  out.Set("fullRounds", Napi::Number::New(env, static_cast<double>(fullRounds)));
  out.Set("txDropped", Napi::Number::New(env, static_cast<double>(sta[kTxDropped] + stb[kTxDropped])));
  return out;
}

}  // namespace lvsio
