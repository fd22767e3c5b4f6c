{
  "targets": [
    {
      "target_name": "ikegw_native",
      "sources": ["ikegw_native.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
