// ikegw's native piece: only what Node cannot do by itself, for the ESP data paths.
//
//   - open a TUN device (/dev/net/tun + ioctl TUNSETIFF, IFF_TUN | IFF_NO_PI), set its MTU and
//     bring it up (SIOCSIFMTU / SIOCSIFFLAGS), report its ifindex;
//   - open an IPv4 raw socket for IP protocol 50 (plain ESP, RFC 4303 without UDP encapsulation);
//   - read packets from such a descriptor in batches: a uv_poll watcher on the main loop reads
//     until EAGAIN (or the batch is full) into one caller-owned ArrayBuffer, then calls back into
//     JavaScript once per batch with the count (lengths in a caller-owned Int32Array) — one
//     JS<->C transition per batch instead of per packet, no allocation per packet;
//   - write one packet (TUN) or send one datagram to an IPv4 address (raw ESP socket) synchronously;
//   - send a batch of UDP datagrams with one sendmmsg(2) (ESP-in-UDP from the NAT-T socket);
//   - open and bind a UDP socket whose descriptor JavaScript then knows (the NAT-T socket: dgram
//     adopts it with socket.bind({ fd }), and the descriptor serves sendmmsg and setsockopt), and
//     integer socket options on a descriptor (UDP_ENCAP for the kernel data path, SO_REUSEADDR);
//   - AEAD (AES-GCM, ChaCha20-Poly1305) in place with a per-SA EVP_CIPHER_CTX that keeps its key
//     schedule: Node's own OpenSSL (the headers ship with Node, the symbols are exported by the node
//     binary), without the per-packet cipher objects and buffers of node:crypto.
//
// Everything runs on the Node main thread; there are no worker threads. Errors come back as JS
// exceptions whose `code` is the errno name (EPERM, ENOENT, ...), or as negative errno values from
// the per-packet calls (no exception in the hot path).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <node_api.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      napi_throw_error(env, "EINTERNAL", "N-API call failed: " #call);                             \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

static const char *errno_name(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EINVAL: return "EINVAL";
    case ENODEV: return "ENODEV";
    case ENXIO: return "ENXIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOBUFS: return "ENOBUFS";
    case ENOMEM: return "ENOMEM";
    case EMSGSIZE: return "EMSGSIZE";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case EIO: return "EIO";
    case EFAULT: return "EFAULT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case ENOTSOCK: return "ENOTSOCK";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOSYS: return "ENOSYS";
    default: {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
      const char *n = strerrorname_np(e);
      return n ? n : "EUNKNOWN";
#else
      return "EUNKNOWN";
#endif
    }
  }
}

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s (%s, errno %d)", what, strerror(e), errno_name(e), e);
  napi_throw_error(env, errno_name(e), msg);
  return NULL;
}

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  return napi_get_value_int32(env, v, out) == napi_ok;
}

// ---- TUN ------------------------------------------------------------------------------------

static int ifreq_ioctl(unsigned long req, struct ifreq *ifr) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return -errno;
  int r = ioctl(s, req, ifr);
  int e = errno;
  close(s);
  return r < 0 ? -e : 0;
}

// tunOpen(name: string, mtu: number, txqlen?: number) -> { fd, name, ifindex }
static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char name[IFNAMSIZ] = {0};
  size_t nlen = 0;
  if (argc < 2 || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &nlen) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "tunOpen(name, mtu)");
    return NULL;
  }
  int32_t mtu = 0;
  if (!get_i32(env, argv[1], &mtu)) {
    napi_throw_type_error(env, "EINVAL", "tunOpen: mtu must be a number");
    return NULL;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open /dev/net/tun", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  memcpy(ifr.ifr_name, name, nlen < IFNAMSIZ - 1 ? nlen : IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "ioctl TUNSETIFF", e);
  }
  char real[IFNAMSIZ + 1] = {0};
  memcpy(real, ifr.ifr_name, IFNAMSIZ);
  int r;
  if (mtu > 0) {
    struct ifreq m;
    memset(&m, 0, sizeof m);
    memcpy(m.ifr_name, real, IFNAMSIZ);
    m.ifr_mtu = mtu;
    if ((r = ifreq_ioctl(SIOCSIFMTU, &m)) < 0) {
      close(fd);
      return throw_errno(env, "ioctl SIOCSIFMTU", -r);
    }
  }
  int32_t qlen = 0;
  if (argc >= 3 && get_i32(env, argv[2], &qlen) && qlen > 0) {
    struct ifreq q;
    memset(&q, 0, sizeof q);
    memcpy(q.ifr_name, real, IFNAMSIZ);
    q.ifr_qlen = qlen;
    if ((r = ifreq_ioctl(SIOCSIFTXQLEN, &q)) < 0) {
      close(fd);
      return throw_errno(env, "ioctl SIOCSIFTXQLEN", -r);
    }
  }
  struct ifreq f;
  memset(&f, 0, sizeof f);
  memcpy(f.ifr_name, real, IFNAMSIZ);
  if ((r = ifreq_ioctl(SIOCGIFFLAGS, &f)) < 0) {
    close(fd);
    return throw_errno(env, "ioctl SIOCGIFFLAGS", -r);
  }
  f.ifr_flags |= IFF_UP | IFF_RUNNING;
  if ((r = ifreq_ioctl(SIOCSIFFLAGS, &f)) < 0) {
    close(fd);
    return throw_errno(env, "ioctl SIOCSIFFLAGS", -r);
  }
  struct ifreq x;
  memset(&x, 0, sizeof x);
  memcpy(x.ifr_name, real, IFNAMSIZ);
  if ((r = ifreq_ioctl(SIOCGIFINDEX, &x)) < 0) {
    close(fd);
    return throw_errno(env, "ioctl SIOCGIFINDEX", -r);
  }
  napi_value out, v;
  CHECK(napi_create_object(env, &out));
  CHECK(napi_create_int32(env, fd, &v));
  CHECK(napi_set_named_property(env, out, "fd", v));
  CHECK(napi_create_string_utf8(env, real, NAPI_AUTO_LENGTH, &v));
  CHECK(napi_set_named_property(env, out, "name", v));
  CHECK(napi_create_int32(env, x.ifr_ifindex, &v));
  CHECK(napi_set_named_property(env, out, "ifindex", v));
  return out;
}

// rawEspOpen4() -> fd : an IPv4 raw socket for protocol 50. Reads return the IPv4 header + ESP.
static napi_value raw_esp_open4(napi_env env, napi_callback_info info) {
  int fd = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ESP);
  if (fd < 0) return throw_errno(env, "socket(AF_INET, SOCK_RAW, IPPROTO_ESP)", errno);
  napi_value v;
  CHECK(napi_create_int32(env, fd, &v));
  return v;
}

// ---- batched reader ---------------------------------------------------------------------------

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_ref buffer_ref;  // keeps the ArrayBuffer alive
  napi_ref lens_ref;    // keeps the Int32Array alive
  napi_async_context actx;
  napi_ref self;        // the JS handle object (for make_callback's recv)
  uint8_t *base;
  int32_t *lens;
  int32_t slot;
  int32_t slots;
  int fd;
  int closing;
} reader_t;

static void reader_closed(uv_handle_t *h) {
  reader_t *r = (reader_t *)h->data;
  free(r);
}

static void reader_release(reader_t *r) {
  if (r->closing) return;
  r->closing = 1;
  uv_poll_stop(&r->poll);
  napi_delete_reference(r->env, r->callback);
  napi_delete_reference(r->env, r->buffer_ref);
  napi_delete_reference(r->env, r->lens_ref);
  napi_delete_reference(r->env, r->self);
  napi_async_destroy(r->env, r->actx);
  uv_close((uv_handle_t *)&r->poll, reader_closed);
}

static void reader_cb(uv_poll_t *h, int status, int events) {
  reader_t *r = (reader_t *)h->data;
  if (r->closing) return;
  int32_t n = 0;
  int err = 0;
  if (status < 0) {
    err = -status;
  } else {
    while (n < r->slots) {
      ssize_t got = read(r->fd, r->base + (size_t)n * (size_t)r->slot, (size_t)r->slot);
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) err = errno;
        break;
      }
      r->lens[n++] = (int32_t)got;
    }
  }
  if (n == 0 && err == 0) return;
  napi_env env = r->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, argv[2], result;
  if (napi_get_reference_value(env, r->callback, &cb) == napi_ok &&
      napi_get_reference_value(env, r->self, &recv) == napi_ok &&
      napi_create_int32(env, n, &argv[0]) == napi_ok &&
      napi_create_int32(env, -err, &argv[1]) == napi_ok) {
    // make_callback runs the microtask queue and reports exceptions as uncaught, like any I/O
    // callback of Node's own.
    napi_make_callback(env, r->actx, recv, cb, 2, argv, &result);
  }
  napi_close_handle_scope(env, scope);
}

// readerStart(fd, buffer: ArrayBuffer, slotSize, slots, lens: Int32Array, cb(count, negErrno)) -> handle
static napi_value reader_start(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, slot, slots;
  if (argc < 6 || !get_i32(env, argv[0], &fd) || !get_i32(env, argv[2], &slot) ||
      !get_i32(env, argv[3], &slots) || slot <= 0 || slots <= 0) {
    napi_throw_type_error(env, "EINVAL", "readerStart(fd, buffer, slotSize, slots, lens, cb)");
    return NULL;
  }
  void *data;
  size_t blen;
  if (napi_get_arraybuffer_info(env, argv[1], &data, &blen) != napi_ok ||
      blen < (size_t)slot * (size_t)slots) {
    napi_throw_type_error(env, "EINVAL", "readerStart: buffer must be an ArrayBuffer of slotSize*slots bytes");
    return NULL;
  }
  napi_typedarray_type tt;
  size_t llen;
  void *ldata;
  if (napi_get_typedarray_info(env, argv[4], &tt, &llen, &ldata, NULL, NULL) != napi_ok ||
      tt != napi_int32_array || llen < (size_t)slots) {
    napi_throw_type_error(env, "EINVAL", "readerStart: lens must be an Int32Array of `slots` entries");
    return NULL;
  }
  napi_valuetype ct;
  CHECK(napi_typeof(env, argv[5], &ct));
  if (ct != napi_function) {
    napi_throw_type_error(env, "EINVAL", "readerStart: callback must be a function");
    return NULL;
  }
  uv_loop_t *loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  reader_t *r = calloc(1, sizeof *r);
  if (!r) return throw_errno(env, "readerStart", ENOMEM);
  r->env = env;
  r->fd = fd;
  r->base = data;
  r->lens = ldata;
  r->slot = slot;
  r->slots = slots;
  napi_value self, name;
  CHECK(napi_create_object(env, &self));
  CHECK(napi_create_reference(env, self, 1, &r->self));
  CHECK(napi_create_reference(env, argv[5], 1, &r->callback));
  CHECK(napi_create_reference(env, argv[1], 1, &r->buffer_ref));
  CHECK(napi_create_reference(env, argv[4], 1, &r->lens_ref));
  CHECK(napi_create_string_utf8(env, "ikegw:packet-reader", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_async_init(env, self, name, &r->actx));
  int e = uv_poll_init(loop, &r->poll, fd);
  if (e < 0) {
    napi_delete_reference(env, r->self);
    napi_delete_reference(env, r->callback);
    napi_delete_reference(env, r->buffer_ref);
    napi_delete_reference(env, r->lens_ref);
    napi_async_destroy(env, r->actx);
    free(r);
    return throw_errno(env, "uv_poll_init", -e);
  }
  r->poll.data = r;
  e = uv_poll_start(&r->poll, UV_READABLE, reader_cb);
  if (e < 0) {
    reader_release(r);
    return throw_errno(env, "uv_poll_start", -e);
  }
  // The reader alone does not keep the process alive (the daemon's sockets and timers do).
  uv_unref((uv_handle_t *)&r->poll);
  napi_value ext;
  CHECK(napi_create_external(env, r, NULL, NULL, &ext));
  return ext;
}

// readerStop(handle)
static napi_value reader_stop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *p = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], &p) != napi_ok || !p) {
    napi_throw_type_error(env, "EINVAL", "readerStop(handle)");
    return NULL;
  }
  reader_release((reader_t *)p);
  return NULL;
}

// ---- writes -------------------------------------------------------------------------------------

static int typed_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  napi_typedarray_type tt;
  size_t n;
  void *d;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &tt, &n, &d, &ab, &off) != napi_ok) return 0;
  if (tt != napi_uint8_array) return 0;
  *data = d;
  *len = n;
  return 1;
}

// write(fd, bytes: Uint8Array, offset, length) -> bytes written, or -errno
static napi_value fd_write(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, off, len;
  uint8_t *d;
  size_t n;
  if (argc < 4 || !get_i32(env, argv[0], &fd) || !typed_bytes(env, argv[1], &d, &n) ||
      !get_i32(env, argv[2], &off) || !get_i32(env, argv[3], &len) || off < 0 || len < 0 ||
      (size_t)off + (size_t)len > n) {
    napi_throw_type_error(env, "EINVAL", "write(fd, Uint8Array, offset, length)");
    return NULL;
  }
  ssize_t w;
  do {
    w = write(fd, d + off, (size_t)len);
  } while (w < 0 && errno == EINTR);
  napi_value v;
  CHECK(napi_create_int32(env, w < 0 ? -errno : (int32_t)w, &v));
  return v;
}

// sendTo4(fd, bytes: Uint8Array, offset, length, dst: string) -> bytes sent, or -errno
static napi_value send_to4(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, off, len;
  uint8_t *d;
  size_t n;
  char addr[64] = {0};
  size_t alen = 0;
  if (argc < 5 || !get_i32(env, argv[0], &fd) || !typed_bytes(env, argv[1], &d, &n) ||
      !get_i32(env, argv[2], &off) || !get_i32(env, argv[3], &len) || off < 0 || len < 0 ||
      (size_t)off + (size_t)len > n ||
      napi_get_value_string_utf8(env, argv[4], addr, sizeof addr, &alen) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "sendTo4(fd, Uint8Array, offset, length, address)");
    return NULL;
  }
  struct sockaddr_in sin;
  memset(&sin, 0, sizeof sin);
  sin.sin_family = AF_INET;
  if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
    napi_throw_type_error(env, "EINVAL", "sendTo4: not an IPv4 address");
    return NULL;
  }
  ssize_t w;
  do {
    w = sendto(fd, d + off, (size_t)len, 0, (struct sockaddr *)&sin, sizeof sin);
  } while (w < 0 && errno == EINTR);
  napi_value v;
  CHECK(napi_create_int32(env, w < 0 ? -errno : (int32_t)w, &v));
  return v;
}

// close(fd)
static napi_value fd_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || !get_i32(env, argv[0], &fd)) {
    napi_throw_type_error(env, "EINVAL", "close(fd)");
    return NULL;
  }
  if (close(fd) < 0) return throw_errno(env, "close", errno);
  return NULL;
}

// ---- UDP socket and socket options ---------------------------------------------------------------

// udpBind(family: 4 | 6, address: string, port: number) -> fd
// A non-blocking, close-on-exec UDP socket bound to address:port (port 0: the kernel picks). As
// dgram's createSocket({ ipv6Only: false }): IPV6_V6ONLY is left at the system default
// (net.ipv6.bindv6only), and no SO_REUSEADDR, so another socket cannot share the port. Errors are exceptions with the errno name
// as `code` (EADDRINUSE, EADDRNOTAVAIL, EACCES, ...); nothing stays open then.
static napi_value udp_bind(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t family, port;
  char addr[INET6_ADDRSTRLEN + 1] = {0};
  size_t alen = 0;
  if (argc < 3 || !get_i32(env, argv[0], &family) || (family != 4 && family != 6) ||
      napi_get_value_string_utf8(env, argv[1], addr, sizeof addr, &alen) != napi_ok ||
      !get_i32(env, argv[2], &port) || port < 0 || port > 65535) {
    napi_throw_type_error(env, "EINVAL", "udpBind(family: 4 | 6, address, port)");
    return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t sslen;
  memset(&ss, 0, sizeof ss);
  if (family == 4) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &a->sin_addr) != 1) {
      napi_throw_type_error(env, "EINVAL", "udpBind: not an IPv4 address");
      return NULL;
    }
    sslen = sizeof *a;
  } else {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    if (inet_pton(AF_INET6, addr, &a->sin6_addr) != 1) {
      napi_throw_type_error(env, "EINVAL", "udpBind: not an IPv6 address");
      return NULL;
    }
    sslen = sizeof *a;
  }
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "socket(SOCK_DGRAM)", errno);
  if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, "bind", e);
  }
  napi_value v;
  CHECK(napi_create_int32(env, fd, &v));
  return v;
}

// setsockoptInt(fd, level, name, value) : setsockopt with an int value; throws with the errno name
static napi_value setsockopt_int(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, level, name, value;
  if (argc < 4 || !get_i32(env, argv[0], &fd) || !get_i32(env, argv[1], &level) ||
      !get_i32(env, argv[2], &name) || !get_i32(env, argv[3], &value)) {
    napi_throw_type_error(env, "EINVAL", "setsockoptInt(fd, level, name, value)");
    return NULL;
  }
  int v = value;
  if (setsockopt(fd, level, name, &v, sizeof v) < 0) return throw_errno(env, "setsockopt", errno);
  return NULL;
}

// getsockoptInt(fd, level, name) -> value : getsockopt with an int value; throws with the errno name
static napi_value getsockopt_int(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, level, name;
  if (argc < 3 || !get_i32(env, argv[0], &fd) || !get_i32(env, argv[1], &level) ||
      !get_i32(env, argv[2], &name)) {
    napi_throw_type_error(env, "EINVAL", "getsockoptInt(fd, level, name)");
    return NULL;
  }
  int v = 0;
  socklen_t len = sizeof v;
  if (getsockopt(fd, level, name, &v, &len) < 0) return throw_errno(env, "getsockopt", errno);
  napi_value out;
  CHECK(napi_create_int32(env, v, &out));
  return out;
}

// ---- batched UDP send --------------------------------------------------------------------------

#define MAX_BATCH 256

// udpSendBatch(fd, buf: Uint8Array, offs: Int32Array, lens: Int32Array, addrs: Uint32Array,
//              ports: Int32Array, count) -> datagrams the kernel took (0..count), or -errno when
// none was taken. A datagram the kernel refuses (EAGAIN, EMSGSIZE, ...) is skipped, not retried.
// Each datagram i is buf[offs[i] .. offs[i]+lens[i]) to addrs[i] (IPv4, host order):ports[i].
static napi_value udp_send_batch(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd, count;
  uint8_t *d;
  size_t n;
  napi_typedarray_type t1, t2, t3, t4;
  size_t l1, l2, l3, l4;
  void *offs, *lens, *addrs, *ports;
  if (argc < 7 || !get_i32(env, argv[0], &fd) || !typed_bytes(env, argv[1], &d, &n) ||
      napi_get_typedarray_info(env, argv[2], &t1, &l1, &offs, NULL, NULL) != napi_ok ||
      napi_get_typedarray_info(env, argv[3], &t2, &l2, &lens, NULL, NULL) != napi_ok ||
      napi_get_typedarray_info(env, argv[4], &t3, &l3, &addrs, NULL, NULL) != napi_ok ||
      napi_get_typedarray_info(env, argv[5], &t4, &l4, &ports, NULL, NULL) != napi_ok ||
      !get_i32(env, argv[6], &count) || t1 != napi_int32_array || t2 != napi_int32_array ||
      t3 != napi_uint32_array || t4 != napi_int32_array || count < 0 || (size_t)count > l1 ||
      (size_t)count > l2 || (size_t)count > l3 || (size_t)count > l4) {
    napi_throw_type_error(env, "EINVAL", "udpSendBatch(fd, buf, offs, lens, addrs, ports, count)");
    return NULL;
  }
  int32_t *o = offs, *l = lens, *pt = ports;
  uint32_t *a = addrs;
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_in sa[MAX_BATCH];
  int sent = 0, ok = 0, err = 0;
  while (sent < count) {
    int m = 0;
    for (int i = sent; i < count && m < MAX_BATCH; i++, m++) {
      if (o[i] < 0 || l[i] < 0 || (size_t)o[i] + (size_t)l[i] > n) {
        napi_throw_range_error(env, "EINVAL", "udpSendBatch: datagram outside the buffer");
        return NULL;
      }
      iov[m].iov_base = d + o[i];
      iov[m].iov_len = (size_t)l[i];
      memset(&sa[m], 0, sizeof sa[m]);
      sa[m].sin_family = AF_INET;
      sa[m].sin_addr.s_addr = htonl(a[i]);
      sa[m].sin_port = htons((uint16_t)pt[i]);
      memset(&msgs[m], 0, sizeof msgs[m]);
      msgs[m].msg_hdr.msg_iov = &iov[m];
      msgs[m].msg_hdr.msg_iovlen = 1;
      msgs[m].msg_hdr.msg_name = &sa[m];
      msgs[m].msg_hdr.msg_namelen = sizeof sa[m];
    }
    int r = sendmmsg(fd, msgs, (unsigned)m, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      err = errno;
      sent++;  // the first datagram of this chunk failed: skip it
      continue;
    }
    sent += r;
    ok += r;
  }
  napi_value v;
  CHECK(napi_create_int32(env, ok == 0 && err ? -err : ok, &v));
  return v;
}

// ---- AEAD with a per-SA context -------------------------------------------------------------------

typedef struct {
  EVP_CIPHER_CTX *ctx;
  uint8_t nonce[12];
  int encrypt;
} aead_t;

static void aead_finalize(napi_env env, void *data, void *hint) {
  aead_t *a = data;
  EVP_CIPHER_CTX_free(a->ctx);
  OPENSSL_cleanse(a, sizeof *a);
  free(a);
}

// aeadNew(kind: 0 = AES-GCM, 1 = ChaCha20-Poly1305, key: Uint8Array, salt: Uint8Array(4), encrypt) -> handle
static napi_value aead_new(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t kind;
  uint8_t *key, *salt;
  size_t klen, slen;
  bool enc;
  if (argc < 4 || !get_i32(env, argv[0], &kind) || !typed_bytes(env, argv[1], &key, &klen) ||
      !typed_bytes(env, argv[2], &salt, &slen) || slen != 4 ||
      napi_get_value_bool(env, argv[3], &enc) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "aeadNew(kind, key, salt, encrypt)");
    return NULL;
  }
  const EVP_CIPHER *c = NULL;
  if (kind == 0 && klen == 16) c = EVP_aes_128_gcm();
  else if (kind == 0 && klen == 24) c = EVP_aes_192_gcm();
  else if (kind == 0 && klen == 32) c = EVP_aes_256_gcm();
  else if (kind == 1 && klen == 32) c = EVP_chacha20_poly1305();
  if (!c) {
    napi_throw_type_error(env, "EINVAL", "aeadNew: unsupported algorithm or key length");
    return NULL;
  }
  aead_t *a = calloc(1, sizeof *a);
  if (!a) return throw_errno(env, "aeadNew", ENOMEM);
  a->ctx = EVP_CIPHER_CTX_new();
  a->encrypt = enc ? 1 : 0;
  memcpy(a->nonce, salt, 4);
  if (!a->ctx || EVP_CipherInit_ex(a->ctx, c, NULL, NULL, NULL, a->encrypt) != 1 ||
      EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) != 1 ||
      EVP_CipherInit_ex(a->ctx, NULL, NULL, key, NULL, a->encrypt) != 1) {
    if (a->ctx) EVP_CIPHER_CTX_free(a->ctx);
    free(a);
    napi_throw_error(env, "EINVAL", "aeadNew: OpenSSL initialisation failed");
    return NULL;
  }
  napi_value ext;
  CHECK(napi_create_external(env, a, aead_finalize, NULL, &ext));
  return ext;
}

// Shared argument parsing of aeadSeal/aeadOpen:
//   (handle, aad: Uint8Array, buf: Uint8Array, ivOff, dataOff, dataLen, tagOff)
static aead_t *aead_args(napi_env env, napi_callback_info info, uint8_t **aad, size_t *aadLen,
                         uint8_t **buf, int32_t *ivOff, int32_t *dataOff, int32_t *dataLen,
                         int32_t *tagOff) {
  size_t argc = 7;
  napi_value argv[7];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  void *p = NULL;
  size_t n;
  if (argc < 7 || napi_get_value_external(env, argv[0], &p) != napi_ok || !p ||
      !typed_bytes(env, argv[1], aad, aadLen) || !typed_bytes(env, argv[2], buf, &n) ||
      !get_i32(env, argv[3], ivOff) || !get_i32(env, argv[4], dataOff) ||
      !get_i32(env, argv[5], dataLen) || !get_i32(env, argv[6], tagOff) || *ivOff < 0 ||
      *dataOff < 0 || *dataLen < 0 || *tagOff < 0 || (size_t)*ivOff + 8 > n ||
      (size_t)*dataOff + (size_t)*dataLen > n || (size_t)*tagOff + 16 > n) {
    napi_throw_type_error(env, "EINVAL", "aead(handle, aad, buf, ivOff, dataOff, dataLen, tagOff)");
    return NULL;
  }
  return p;
}

// aeadSeal(...) -> true: buf[dataOff..+dataLen) encrypted in place, 16-byte tag at tagOff
static napi_value aead_seal(napi_env env, napi_callback_info info) {
  uint8_t *aad, *buf;
  size_t aadLen;
  int32_t ivOff, off, len, tagOff;
  aead_t *a = aead_args(env, info, &aad, &aadLen, &buf, &ivOff, &off, &len, &tagOff);
  if (!a) return NULL;
  int outl, ok = a->encrypt == 1;
  memcpy(a->nonce + 4, buf + ivOff, 8);
  ok = ok && EVP_CipherInit_ex(a->ctx, NULL, NULL, NULL, a->nonce, 1) == 1;
  ok = ok && EVP_CipherUpdate(a->ctx, NULL, &outl, aad, (int)aadLen) == 1;
  ok = ok && EVP_CipherUpdate(a->ctx, buf + off, &outl, buf + off, len) == 1;
  ok = ok && EVP_CipherFinal_ex(a->ctx, buf + off + len, &outl) == 1;
  ok = ok && EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_GET_TAG, 16, buf + tagOff) == 1;
  napi_value v;
  CHECK(napi_get_boolean(env, ok, &v));
  return v;
}

// aeadOpen(...) -> true when the tag verifies; buf[dataOff..+dataLen) is then decrypted in place
static napi_value aead_open(napi_env env, napi_callback_info info) {
  uint8_t *aad, *buf;
  size_t aadLen;
  int32_t ivOff, off, len, tagOff;
  aead_t *a = aead_args(env, info, &aad, &aadLen, &buf, &ivOff, &off, &len, &tagOff);
  if (!a) return NULL;
  int outl, ok = a->encrypt == 0;
  uint8_t tag[16];
  memcpy(tag, buf + tagOff, 16);
  memcpy(a->nonce + 4, buf + ivOff, 8);
  ok = ok && EVP_CipherInit_ex(a->ctx, NULL, NULL, NULL, a->nonce, 0) == 1;
  ok = ok && EVP_CIPHER_CTX_ctrl(a->ctx, EVP_CTRL_AEAD_SET_TAG, 16, tag) == 1;
  ok = ok && EVP_CipherUpdate(a->ctx, NULL, &outl, aad, (int)aadLen) == 1;
  ok = ok && EVP_CipherUpdate(a->ctx, buf + off, &outl, buf + off, len) == 1;
  ok = ok && EVP_CipherFinal_ex(a->ctx, buf + off + len, &outl) == 1;
  napi_value v;
  CHECK(napi_get_boolean(env, ok, &v));
  return v;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"tunOpen", NULL, tun_open, NULL, NULL, NULL, napi_default, NULL},
      {"rawEspOpen4", NULL, raw_esp_open4, NULL, NULL, NULL, napi_default, NULL},
      {"readerStart", NULL, reader_start, NULL, NULL, NULL, napi_default, NULL},
      {"readerStop", NULL, reader_stop, NULL, NULL, NULL, napi_default, NULL},
      {"write", NULL, fd_write, NULL, NULL, NULL, napi_default, NULL},
      {"sendTo4", NULL, send_to4, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, fd_close, NULL, NULL, NULL, napi_default, NULL},
      {"udpSendBatch", NULL, udp_send_batch, NULL, NULL, NULL, napi_default, NULL},
      {"udpBind", NULL, udp_bind, NULL, NULL, NULL, napi_default, NULL},
      {"setsockoptInt", NULL, setsockopt_int, NULL, NULL, NULL, napi_default, NULL},
      {"getsockoptInt", NULL, getsockopt_int, NULL, NULL, NULL, napi_default, NULL},
      {"aeadNew", NULL, aead_new, NULL, NULL, NULL, napi_default, NULL},
      {"aeadSeal", NULL, aead_seal, NULL, NULL, NULL, napi_default, NULL},
      {"aeadOpen", NULL, aead_open, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok)
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
