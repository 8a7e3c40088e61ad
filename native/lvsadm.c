/*
 * lvsadm's fast client: the same program as the Node.js client (src/tools/cli/lvsadm.ts) for every
 * command lvsd answers by itself, without the ~100 ms it takes to start Node.js.
 *
 * It takes `--control PATH` / `--control=PATH` out of the command line (else $LVSD_CONTROL, else
 * /run/lvsd/control.sock), sends the rest to lvsd's control socket as one JSON line
 * {"argv":[...],"stream":true} (with "stdin" for -R), prints the reply's {"out":...} chunks as they
 * come, then the final {"stdout","stderr","code"} line's stdout and stderr, and exits with its code.
 * lvsd parses the line itself, so its errors, -h and -v are the ones the Node.js client prints.
 *
 * Everything else is handed to the Node.js client, unchanged, by exec'ing `node bin/lvsadm ARGV`
 * (the same process id, the same stdin/stdout/stderr): when lvsd does not answer (it then prints
 * the "cannot connect" message, or the help, version and command-line errors it checks without a
 * daemon), `--trace` (a polling loop), `--import` (its file is made absolute), a bad `--control`,
 * command lines that carry -R anywhere but as the only word, and arguments that are not UTF-8.
 *
 * Output errors: EPIPE on stdout (`lvsadm -Ln | head -1`) ends the program quietly with status
 * 141, what a shell reports for ipvsadm killed by SIGPIPE; the Node.js client does the same.
 *
 * Plain C and libc only; built by node-gyp with the addon (binding.gyp target "lvsadm").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_CONTROL_PATH "/run/lvsd/control.sock"
#define EXIT_EPIPE 141

static char **orig_argv;

/* ---- growable byte buffer ---- */

struct buf {
  char *p;
  size_t len, cap;
};

static void oom(void) {
  static const char msg[] = "lvsadm: out of memory\n";
  if (write(2, msg, sizeof msg - 1) < 0) {
  }
  _exit(1);
}

static void buf_reserve(struct buf *b, size_t more) {
  if (b->len + more <= b->cap) return;
  size_t cap = b->cap ? b->cap : 4096;
  while (cap < b->len + more) cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p) oom();
  b->p = p;
  b->cap = cap;
}

static void buf_add(struct buf *b, const char *s, size_t n) {
  if (n == 0) return;
  buf_reserve(b, n);
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* A JSON string: quotes, backslashes and control characters escaped; other bytes as they are
 * (lvsd decodes the line as UTF-8, as the Node.js client decodes its own input). */
static void buf_json(struct buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  buf_reserve(b, n + 2);
  b->p[b->len++] = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      buf_add(b, e, 2);
    } else if (c == '\n') {
      buf_add(b, "\\n", 2);
    } else if (c == '\r') {
      buf_add(b, "\\r", 2);
    } else if (c == '\t') {
      buf_add(b, "\\t", 2);
    } else if (c < 0x20) {
      char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      buf_add(b, e, 6);
    } else {
      buf_reserve(b, 1);
      b->p[b->len++] = (char)c;
    }
  }
  buf_add(b, "\"", 1);
}

/* ---- output ---- */

/* Write all of s to fd. EPIPE on stdout ends the program quietly (see the file comment). */
static void out_all(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (fd == 1 && errno == EPIPE) _exit(EXIT_EPIPE);
      return; /* stderr gone, or stdout closed otherwise: nothing left to tell */
    }
    s += w;
    n -= (size_t)w;
  }
}

/* ---- falling back to the Node.js client ---- */

/* exec `node <root>/bin/lvsadm <original argv>`: root is two levels above this executable
 * (<root>/build/Release/lvsadm). Only returns when exec fails. */
static void node_client(void) {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n > 0) {
    exe[n] = 0;
    for (int up = 0; up < 3; up++) {
      char *slash = strrchr(exe, '/');
      if (!slash) {
        n = -1;
        break;
      }
      *slash = 0;
    }
  }
  if (n <= 0) {
    out_all(2, "lvsadm: cannot find the Node.js client (no /proc/self/exe)\n", 59);
    _exit(2);
  }
  struct buf script = {0};
  buf_str(&script, exe);
  buf_str(&script, "/bin/lvsadm");
  buf_add(&script, "", 1);
  int argc = 0;
  while (orig_argv[argc]) argc++;
  char **av = calloc((size_t)argc + 2, sizeof *av);
  if (!av) oom();
  av[0] = "node";
  av[1] = script.p;
  for (int i = 1; i < argc; i++) av[i + 1] = orig_argv[i];
  av[argc + 1] = NULL;
  execvp("node", av);
  struct buf msg = {0};
  buf_str(&msg, "lvsadm: cannot run the Node.js client (node ");
  buf_str(&msg, script.p);
  buf_str(&msg, "): ");
  buf_str(&msg, strerror(errno));
  buf_str(&msg, "\n");
  out_all(2, msg.p, msg.len);
  _exit(2);
}

/* Make `in` the process's stdin again (a memory file at offset 0) before handing over. */
static void restdin(const struct buf *in) {
  int fd = memfd_create("lvsadm-stdin", 0);
  if (fd < 0) {
    FILE *f = tmpfile();
    fd = f ? dup(fileno(f)) : -1;
  }
  if (fd < 0) return;
  const char *p = in->p;
  for (size_t n = in->len; n > 0;) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= (size_t)w;
  }
  if (lseek(fd, 0, SEEK_SET) == 0) dup2(fd, 0);
  close(fd);
}

/* ---- the command line ---- */

/* Whether s is well-formed UTF-8 (Node.js would turn anything else into U+FFFD). */
static int utf8_ok(const unsigned char *s) {
  while (*s) {
    unsigned char c = *s;
    int n;
    unsigned min;
    if (c < 0x80) {
      s++;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, min = 0x10000;
    } else {
      return 0;
    }
    unsigned cp = c & (0x3f >> n);
    for (int i = 1; i <= n; i++) {
      if ((s[i] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    s += n + 1;
  }
  return 1;
}

static int has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* A word the Node.js client handles itself: --trace FILE (polls lvsd until the trace ends) and
 * --import FILE (the path is made absolute first). */
static int node_only_word(const char *a) {
  return strcmp(a, "--trace") == 0 || has_prefix(a, "--trace=") || strcmp(a, "--import") == 0 ||
         has_prefix(a, "--import=");
}

/* A word that may make the line a restore (-R, --restore, or R in a bundle of short options). */
static int restore_word(const char *a) {
  if (has_prefix(a, "--")) return strcmp(a, "--restore") == 0 || has_prefix(a, "--restore=");
  return a[0] == '-' && strchr(a + 1, 'R') != NULL;
}

/* ---- the reply: a minimal reader for the JSON objects lvsd writes (JSON.stringify's output) ---- */

struct reply {
  struct buf out, stdout_, stderr_;
  int has_out, has_code, final_seen;
  double code;
};

static void skip_ws(const char **p, const char *end) {
  while (*p < end && (**p == ' ' || **p == '\t' || **p == '\r' || **p == '\n')) (*p)++;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int read_hex4(const char *p, const char *end, unsigned *v) {
  if (end - p < 4) return 0;
  unsigned x = 0;
  for (int i = 0; i < 4; i++) {
    int h = hexval(p[i]);
    if (h < 0) return 0;
    x = (x << 4) | (unsigned)h;
  }
  *v = x;
  return 1;
}

static void put_utf8(struct buf *b, unsigned cp) {
  char e[4];
  size_t n;
  if (cp < 0x80) {
    e[0] = (char)cp, n = 1;
  } else if (cp < 0x800) {
    e[0] = (char)(0xc0 | (cp >> 6)), e[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
  } else if (cp < 0x10000) {
    e[0] = (char)(0xe0 | (cp >> 12)), e[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    e[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
  } else {
    e[0] = (char)(0xf0 | (cp >> 18)), e[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    e[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), e[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
  }
  buf_add(b, e, n);
}

/* A JSON string at *p (on its opening quote) into b (if b). A lone surrogate becomes U+FFFD, as
 * Node.js writes it. Returns 0 on malformed input. */
static int parse_string(const char **p, const char *end, struct buf *b) {
  const char *s = *p;
  if (s >= end || *s != '"') return 0;
  s++;
  for (;;) {
    const char *run = s;
    while (s < end && *s != '"' && *s != '\\') s++;
    if (b) buf_add(b, run, (size_t)(s - run));
    if (s >= end) return 0;
    if (*s == '"') break;
    s++; /* backslash */
    if (s >= end) return 0;
    char c = *s++;
    char lit;
    switch (c) {
      case '"': lit = '"'; break;
      case '\\': lit = '\\'; break;
      case '/': lit = '/'; break;
      case 'b': lit = '\b'; break;
      case 'f': lit = '\f'; break;
      case 'n': lit = '\n'; break;
      case 'r': lit = '\r'; break;
      case 't': lit = '\t'; break;
      case 'u': {
        unsigned cp;
        if (!read_hex4(s, end, &cp)) return 0;
        s += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
          unsigned lo;
          if (end - s >= 6 && s[0] == '\\' && s[1] == 'u' && read_hex4(s + 2, end, &lo) && lo >= 0xdc00 &&
              lo <= 0xdfff) {
            s += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else {
            cp = 0xfffd;
          }
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
          cp = 0xfffd;
        }
        if (b) put_utf8(b, cp);
        continue;
      }
      default:
        return 0;
    }
    if (b) buf_add(b, &lit, 1);
  }
  *p = s + 1;
  return 1;
}

/* Skip any JSON value (for keys this client does not use). */
static int skip_value(const char **p, const char *end) {
  skip_ws(p, end);
  if (*p >= end) return 0;
  char c = **p;
  if (c == '"') return parse_string(p, end, NULL);
  if (c == '{' || c == '[') {
    int depth = 0;
    while (*p < end) {
      char d = **p;
      if (d == '"') {
        if (!parse_string(p, end, NULL)) return 0;
        continue;
      }
      if (d == '{' || d == '[') depth++;
      if (d == '}' || d == ']') {
        depth--;
        if (depth == 0) {
          (*p)++;
          return 1;
        }
      }
      (*p)++;
    }
    return 0;
  }
  while (*p < end && **p != ',' && **p != '}' && **p != ']') (*p)++;
  return 1;
}

/* One reply line: {"out":"..."} or {"stdout":"...","stderr":"...","code":N}. */
static int parse_reply_line(const char *s, const char *end, struct reply *r) {
  r->out.len = r->stdout_.len = r->stderr_.len = 0;
  r->has_out = r->has_code = 0;
  r->code = 1;
  skip_ws(&s, end);
  if (s >= end || *s != '{') return 0;
  s++;
  skip_ws(&s, end);
  if (s < end && *s == '}') return 1;
  for (;;) {
    struct buf key = {0};
    skip_ws(&s, end);
    if (!parse_string(&s, end, &key)) return free(key.p), 0;
    skip_ws(&s, end);
    if (s >= end || *s != ':') return free(key.p), 0;
    s++;
    skip_ws(&s, end);
    struct buf *target = NULL;
    if (key.len == 3 && memcmp(key.p, "out", 3) == 0) target = &r->out, r->has_out = 1;
    else if (key.len == 6 && memcmp(key.p, "stdout", 6) == 0) target = &r->stdout_;
    else if (key.len == 6 && memcmp(key.p, "stderr", 6) == 0) target = &r->stderr_;
    int is_code = key.len == 4 && memcmp(key.p, "code", 4) == 0;
    free(key.p);
    if (target && s < end && *s == '"') {
      target->len = 0;
      if (!parse_string(&s, end, target)) return 0;
    } else if (is_code && s < end && (*s == '-' || (*s >= '0' && *s <= '9'))) {
      char *e;
      char tmp[64];
      size_t n = 0;
      while (s + n < end && n < sizeof tmp - 1 && strchr("+-0123456789.eE", s[n])) n++;
      memcpy(tmp, s, n);
      tmp[n] = 0;
      r->code = strtod(tmp, &e);
      r->has_code = 1;
      s += n;
    } else if (!skip_value(&s, end)) {
      return 0;
    }
    skip_ws(&s, end);
    if (s < end && *s == ',') {
      s++;
      continue;
    }
    if (s < end && *s == '}') return 1;
    return 0;
  }
}

/* ---- main ---- */

/* Node.js's words for a socket error after the connection was made ("read ECONNRESET"). */
static const char *sock_error(const char *op, int err) {
  static char m[64];
  const char *name = err == EPIPE ? "EPIPE" : err == ECONNRESET ? "ECONNRESET" : NULL;
  if (!name) return strerror(err);
  snprintf(m, sizeof m, "%s %s", op, name);
  return m;
}

static void cannot_connect(const char *path, const char *why) {
  struct buf m = {0};
  buf_str(&m, "lvsadm: cannot connect to lvsd at ");
  buf_str(&m, path);
  buf_str(&m, ": ");
  buf_str(&m, why);
  buf_str(&m, "\n");
  out_all(2, m.p, m.len);
  _exit(2);
}

int main(int argc, char **argv) {
  orig_argv = argv;
  /* Write errors come back as EPIPE instead of killing the process (see out_all). */
  signal(SIGPIPE, SIG_IGN);

  /* --control PATH / --control=PATH, anywhere (the Node.js client's splitControlOption). */
  const char *control = NULL;
  char **words = calloc((size_t)argc + 1, sizeof *words);
  if (!words) oom();
  int nw = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!utf8_ok((const unsigned char *)a)) node_client();
    if (strcmp(a, "--control") == 0) {
      if (i + 1 >= argc || argv[i + 1][0] == 0) node_client(); /* its error message */
      control = argv[++i];
      if (!utf8_ok((const unsigned char *)control)) node_client();
    } else if (has_prefix(a, "--control=")) {
      control = a + strlen("--control=");
      if (control[0] == 0) node_client();
    } else {
      if (node_only_word(a)) node_client();
      words[nw++] = argv[i];
    }
  }
  /* -R / --restore as the only word: stdin goes with the request. Anything else with an R in it
   * is left to the Node.js client, which knows whether the line is a restore. */
  int restore = 0;
  for (int i = 0; i < nw; i++) {
    if (restore_word(words[i])) {
      if (nw == 1 && (strcmp(words[0], "-R") == 0 || strcmp(words[0], "--restore") == 0)) restore = 1;
      else node_client();
    }
  }
  const char *path = control;
  if (!path) {
    const char *env = getenv("LVSD_CONTROL");
    path = env && env[0] ? env : DEFAULT_CONTROL_PATH;
  }

  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof sa.sun_path) node_client();
  strcpy(sa.sun_path, path);
  /* -R's input is read first, as the Node.js client does: lvsd gets the request whole. */
  struct buf input = {0};
  if (restore) {
    for (;;) {
      buf_reserve(&input, 65536);
      ssize_t n = read(0, input.p + input.len, input.cap - input.len);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      input.len += (size_t)n;
    }
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    /* The Node.js client says why; it gets the input already read as its stdin. */
    if (restore) restdin(&input);
    node_client();
  }

  struct buf req = {0};
  buf_str(&req, "{\"argv\":[");
  for (int i = 0; i < nw; i++) {
    if (i) buf_add(&req, ",", 1);
    buf_json(&req, words[i], strlen(words[i]));
  }
  buf_add(&req, "]", 1);
  if (restore) {
    buf_str(&req, ",\"stdin\":");
    buf_json(&req, input.p ? input.p : "", input.len);
    free(input.p);
  }
  buf_str(&req, ",\"stream\":true}\n");
  for (size_t off = 0; off < req.len;) {
    ssize_t w = send(fd, req.p + off, req.len - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      cannot_connect(path, sock_error("write", errno));
    }
    off += (size_t)w;
  }
  free(req.p);

  struct buf in = {0};
  struct reply r = {0};
  size_t scan = 0;
  for (;;) {
    char *nl = in.len > scan ? memchr(in.p + scan, '\n', in.len - scan) : NULL;
    if (!nl) {
      scan = in.len;
      buf_reserve(&in, 65536);
      ssize_t n = read(fd, in.p + in.len, in.cap - in.len);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) cannot_connect(path, sock_error("read", errno));
      if (n == 0) cannot_connect(path, "lvsd closed the connection without a reply");
      in.len += (size_t)n;
      continue;
    }
    const char *line = in.p;
    const char *end = nl;
    int blank = 1;
    for (const char *q = line; q < end; q++)
      if (*q != ' ' && *q != '\t' && *q != '\r') blank = 0;
    if (!blank) {
      if (!parse_reply_line(line, end, &r)) cannot_connect(path, "bad reply from lvsd: not JSON");
      if (r.has_out && !r.has_code) {
        out_all(1, r.out.p, r.out.len);
      } else {
        out_all(1, r.stdout_.p, r.stdout_.len);
        out_all(2, r.stderr_.p, r.stderr_.len);
        close(fd);
        return (int)((long long)r.code & 0xff);
      }
    }
    size_t used = (size_t)(nl + 1 - in.p);
    memmove(in.p, nl + 1, in.len - used);
    in.len -= used;
    scan = 0;
  }
}
