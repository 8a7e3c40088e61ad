{
  "targets": [
    {
      "target_name": "lvs_io",
      "sources": [
        "native/addon.cc",
        "native/bpf.cc",
        "native/common.cc",
        "native/csum.cc",
        "native/link.cc",
        "native/rawsock.cc",
        "native/sys.cc",
        "native/tap.cc",
        "native/xdp.cc",
        "native/xdpcopy.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]
    },
    {
      "target_name": "lvsadm",
      "type": "executable",
      "sources": ["native/lvsadm.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    },
    {
      "target_name": "tapcopy",
      "type": "executable",
      "sources": ["bench/e2e/tapcopy.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
