/**
 * xdpcopy: copy Ethernet frames between two interfaces over AF_XDP, both ways, and nothing else:
 * the AF_XDP I/O ceiling of the end-to-end benchmark (bench/e2e/nat.ts, setups xdpcopy and
 * xdpcopy-busy), as tapcopy (bench/e2e/tapcopy.c) is the TAP one. The two sockets share one
 * UMEM and the copying is the addon's (native/xdpcopy.cc): the ring calls lvsd's loop makes on
 * AF_XDP, in C++, with no engine and no JavaScript between them, so whatever lvsd forwards over
 * AF_XDP on a machine can at best match it.
 *
 *   node dist/src/tools/lab/xdpcopy.js [--busy-poll USECS] [--seconds N] IF_A IF_B
 *
 * --busy-poll: the sockets busy-poll as lvsd's `busy-poll=USECS` links do, and the copier never
 * sleeps; while a receive round brings a whole batch (overload) the interfaces' NAPI deferral is
 * on (napi_defer_hard_irqs 2, gro_flush_timeout USECS), as lvsd's governor does
 * (src/control/napi.ts), off again after 500 ms without one; the old values are put back at exit.
 * Runs until SIGTERM/SIGINT (or --seconds), then prints one JSON line: {"aToB":N,"bToA":N,...}.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { loadNative } from "../../datapath/io/native.js";
import { openXdp, XdpIo } from "../../datapath/io/xdp.js";

const USAGE = "usage: xdpcopy [--busy-poll USECS] [--seconds N] IF_A IF_B";
/** Each native call copies for this long; signals and the governor are looked at in between. */
const CHUNK_MS = 100;
const HOLD_MS = 500;

function main(argv: string[]): number {
  let busyPoll = 0;
  let seconds = 0;
  const ifs: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--busy-poll" || a === "--seconds") {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 0 || v > 1_000_000) {
        process.stderr.write(`xdpcopy: ${a} needs an integer in 0..1000000\n${USAGE}\n`);
        return 2;
      }
      if (a === "--busy-poll") busyPoll = v;
      else seconds = v;
    } else if (a === "-h" || a === "--help") {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    } else if (a.startsWith("-")) {
      process.stderr.write(`xdpcopy: unknown option ${a}\n${USAGE}\n`);
      return 2;
    } else ifs.push(a);
  }
  if (ifs.length !== 2) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  // as lvsd opens its AF_XDP links (src/tools/cli/lvsd.ts): one UMEM of 4096 chunks per link
  const opts = busyPoll > 0 ? { busyPoll, busyBudget: 64 } : {};
  let a: XdpIo;
  let b: XdpIo;
  try {
    a = openXdp({ ifname: ifs[0]!, redirect: "all", umemFrames: 2 * 4096, ...opts });
    b = openXdp({ ifname: ifs[1]!, redirect: "all", share: a, ...opts });
  } catch (err) {
    process.stderr.write(`xdpcopy: ${(err as Error).message}\n`);
    return 1;
  }
  const native = loadNative();
  const ha = XdpIo.nativeOf(a);
  const hb = XdpIo.nativeOf(b);

  const files =
    busyPoll > 0
      ? ifs.flatMap((d) => [
          `/sys/class/net/${d}/napi_defer_hard_irqs`,
          `/sys/class/net/${d}/gro_flush_timeout`,
        ])
      : [];
  const old = files.map((f) => readFileSync(f, "utf8").trim());
  let deferredSince = -1;
  const defer = (on: boolean): void => {
    for (let k = 0; k < files.length; k++)
      writeFileSync(files[k]!, on ? (k % 2 === 0 ? "2" : String(busyPoll * 1000)) : old[k]!);
    deferredSince = on ? Date.now() : -1;
  };

  const total = { aToB: 0, bToA: 0, rounds: 0, fullRounds: 0, txDropped: 0, deferrals: 0 };
  let stopping = false;
  const finish = (): void => {
    if (stopping) return;
    stopping = true;
    if (deferredSince >= 0) defer(false);
    a.close();
    b.close();
    process.stdout.write(`${JSON.stringify(total)}\n`);
    process.exit(0);
  };
  process.on("SIGTERM", finish);
  process.on("SIGINT", finish);
  const end = seconds > 0 ? Date.now() + seconds * 1000 : Number.POSITIVE_INFINITY;
  const step = (): void => {
    if (stopping) return;
    const r = native.xdpCopy(ha, hb, CHUNK_MS, busyPoll > 0);
    total.aToB += r.aToB;
    total.bToA += r.bToA;
    total.rounds += r.rounds;
    total.fullRounds += r.fullRounds;
    total.txDropped += r.txDropped;
    if (busyPoll > 0) {
      if (r.fullRounds > 0 && deferredSince < 0) {
        defer(true);
        total.deferrals++;
      } else if (r.fullRounds === 0 && deferredSince >= 0 && Date.now() - deferredSince >= HOLD_MS)
        defer(false);
    }
    if (Date.now() >= end) finish();
    else setImmediate(step);
  };
  setImmediate(step);
  return -1;
}

const code = main(process.argv.slice(2));
if (code >= 0) process.exit(code);
