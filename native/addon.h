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

}  // namespace lvsio
