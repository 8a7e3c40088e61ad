/**
 * `npm run lab` (as root): build the LVS-NAT lab in network namespaces, configure it with
 * lvsadm exactly as the tutorials do with ipvsadm, send requests from the client and show the
 * real servers answering in turn, then the `lvsadm -Ln --stats` table. Everything is removed
 * at the end, also on Ctrl-C or failure.
 *
 * Usage: node dist/src/lab/main.js [nat] [--backend tap|raw] [--requests N] [--keep]
 */

import { NatLab, rsIp, VIP } from "./natlab.js";
import { canUseNetns } from "./netns.js";

function say(s: string): void {
  process.stdout.write(`${s}\n`);
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const mode = args.find((a) => !a.startsWith("-")) ?? "nat";
  const backend = args.includes("--backend") && args[args.indexOf("--backend") + 1] === "raw" ? "raw" : "tap";
  const nIdx = args.indexOf("--requests");
  const requests = nIdx >= 0 ? Number(args[nIdx + 1]) : 8;
  const keep = args.includes("--keep");
  if (mode !== "nat") {
    process.stderr.write(`lab: unknown lab '${mode}' (available: nat)\n`);
    return 2;
  }
  if (!canUseNetns()) {
    process.stderr.write("lab: needs root and the ip tool (network namespaces): run with sudo\n");
    return 2;
  }
  const lab = new NatLab({ prefix: `lab${process.pid % 10000}`, servers: 4, backend });
  let done = false;
  const cleanup = (): void => {
    if (done) return;
    done = true;
    lab.down();
  };
  process.once("SIGINT", () => {
    cleanup();
    process.exit(130);
  });
  process.once("SIGTERM", () => {
    cleanup();
    process.exit(143);
  });
  try {
    say(
      `== LVS-NAT lab (${backend} backend): client 10.0.0.7, director 10.0.0.1 / 192.168.10.254, VIP ${VIP}`,
    );
    await lab.up();
    const cmds = [
      ["-A", "-t", `${VIP}:80`, "-s", "rr"],
      ...[1, 2, 3, 4].map((k) => ["-a", "-t", `${VIP}:80`, "-r", `${rsIp(k)}:80`, "-m"]),
    ];
    for (const c of cmds) {
      say(`# lvsadm ${c.join(" ")}`);
      const r = lab.lvsadm(...c);
      if (r.code !== 0) throw new Error(`lvsadm ${c.join(" ")}: ${r.stderr.trim()}`);
    }
    say("# lvsadm -Ln");
    process.stdout.write(lab.lvsadm("-Ln").stdout);
    say(`# client: ${requests} x curl http://${VIP}/`);
    for (let i = 1; i <= requests; i++)
      say(`  request ${i}: ${lab.get(`http://${VIP}/`).trim() || "(no answer)"}`);
    say("# lvsadm -Ln --stats");
    process.stdout.write(lab.lvsadm("-Ln", "--stats").stdout);
    say("# lvsadm -Lnc");
    process.stdout.write(lab.lvsadm("-Lnc").stdout);
    if (keep) {
      say(`lab kept: namespaces ${lab.topo.ns("*")}; LVSD_CONTROL=${lab.control}; press Ctrl-C to remove it`);
      await new Promise(() => {});
    }
    return 0;
  } catch (err) {
    process.stderr.write(`lab: ${(err as Error).message}\n${lab.log()}`);
    return 1;
  } finally {
    if (!keep) cleanup();
  }
}

main().then((code) => process.exit(code));
