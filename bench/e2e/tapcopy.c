/*
 * tapcopy: copy Ethernet frames between two TAP devices, both directions, and nothing else.
 *
 * It is the reference for "the I/O limit of TAP on this machine" in the end-to-end benchmark:
 * whatever lvsd forwards through two TAPs can at best match this. poll() on both descriptors;
 * on each wake-up, read a batch from each readable side until EAGAIN (or BATCH frames) and
 * write every frame to the other side.
 *
 *   tapcopy [-n NETNS_PATH] [-c] [-d SECONDS] TAP_A TAP_B
 *     -n  enter this network namespace (e.g. /var/run/netns/x) before opening the TAPs
 *     -c  create the TAPs (removed on exit) instead of attaching to existing persistent ones
 *     -d  stop after this many seconds (default: run until SIGINT/SIGTERM)
 *
 * On exit it prints one JSON line: {"aToB":N,"bToA":N,"writeErrors":N,"seconds":S}.
 * Built by node-gyp with the addon (build/Release/tapcopy).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define FRAME_MAX 65536

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static int open_tap(const char *name, int create) {
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    perror("open /dev/net/tun");
    exit(1);
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (create ? IFF_TUN_EXCL : 0);
  if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
    fprintf(stderr, "TUNSETIFF %s: %s\n", name, strerror(errno));
    exit(1);
  }
  if (create) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
      ifr.ifr_flags |= IFF_UP;
      ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    if (s >= 0) close(s);
  }
  return fd;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned char bufs[BATCH][FRAME_MAX];
static ssize_t lens[BATCH];

/* Read up to BATCH frames from `from` (until EAGAIN), write them to `to`. Returns frames copied. */
static unsigned long pump(int from, int to, unsigned long *write_errors) {
  int n = 0;
  while (n < BATCH) {
    ssize_t r = read(from, bufs[n], FRAME_MAX);
    if (r < 0) {
      if (errno == EINTR) continue;
      break; /* EAGAIN: drained */
    }
    lens[n++] = r;
  }
  unsigned long ok = 0;
  for (int i = 0; i < n; i++) {
    if (write(to, bufs[i], (size_t)lens[i]) == lens[i])
      ok++;
    else
      (*write_errors)++;
  }
  return ok;
}

int main(int argc, char **argv) {
  const char *netns = NULL;
  int create = 0;
  double duration = 0;
  int opt;
  while ((opt = getopt(argc, argv, "n:cd:")) != -1) {
    switch (opt) {
      case 'n':
        netns = optarg;
        break;
      case 'c':
        create = 1;
        break;
      case 'd':
        duration = atof(optarg);
        break;
      default:
        fprintf(stderr, "usage: %s [-n NETNS_PATH] [-c] [-d SECONDS] TAP_A TAP_B\n", argv[0]);
        return 2;
    }
  }
  if (argc - optind != 2) {
    fprintf(stderr, "usage: %s [-n NETNS_PATH] [-c] [-d SECONDS] TAP_A TAP_B\n", argv[0]);
    return 2;
  }
  if (netns) {
    int nsfd = open(netns, O_RDONLY | O_CLOEXEC);
    if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) {
      fprintf(stderr, "netns %s: %s\n", netns, strerror(errno));
      return 1;
    }
    close(nsfd);
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);

  int a = open_tap(argv[optind], create);
  int b = open_tap(argv[optind + 1], create);
  struct pollfd pfd[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
  unsigned long a2b = 0, b2a = 0, werr = 0;
  const double t0 = now();
  const double end = duration > 0 ? t0 + duration : 0;
  /* Ready on stdout for whoever started us. */
  printf("ready\n");
  fflush(stdout);
  while (!stop) {
    int r = poll(pfd, 2, 100);
    if (r < 0 && errno != EINTR) {
      perror("poll");
      break;
    }
    if (r > 0) {
      if (pfd[0].revents & (POLLERR | POLLHUP | POLLNVAL) || pfd[1].revents & (POLLERR | POLLHUP | POLLNVAL)) break;
      if (pfd[0].revents & POLLIN) a2b += pump(a, b, &werr);
      if (pfd[1].revents & POLLIN) b2a += pump(b, a, &werr);
    }
    if (end > 0 && now() >= end) break;
  }
  printf("{\"aToB\":%lu,\"bToA\":%lu,\"writeErrors\":%lu,\"seconds\":%.3f}\n", a2b, b2a, werr, now() - t0);
  close(a);
  close(b);
  return 0;
}
