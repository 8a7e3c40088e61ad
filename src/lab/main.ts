/**
 * `npm run lab [-- nat|dr|tun|fullnat]` (as root): build an LVS lab in network namespaces,
 * configure it with lvsadm exactly as the tutorials do with ipvsadm, send requests from the
 * client and show the real servers answering in turn, then the `lvsadm -Ln --stats` table.
 * Everything is removed at the end, also on Ctrl-C or failure.
 *
 * Usage: node dist/src/lab/main.js [nat|dr|tun|fullnat] [--backend tap|raw] [--requests N] [--keep]
 */
import type { LabBase } from "./labbase.js";
import { NatLab, rsIp, VIP } from "./natlab.js";
import { canUseNetns } from "./netns.js";
import { RoutedLab } from "./routedlab.js";

function say(s: string): void {
  process.stdout.write(`${s}\n`);
}

const LABS = ["nat", "dr", "tun", "fullnat"] as const;
type LabName = (typeof LABS)[number];

interface Plan {
  lab: LabBase;
  title: string;
  commands: string[][];
}

function plan(name: LabName, backend: "tap" | "raw", prefix: string): Plan {
  const svc = `${VIP}:80`;
  switch (name) {
    case "nat": {
      const lab = new NatLab({ prefix, servers: 4, backend });
      return {
        lab,
        title: `LVS-NAT (${backend} backend): client 10.0.0.7, director 10.0.0.1 / 192.168.10.254, four real servers`,
        commands: [
          ["-A", "-t", svc, "-s", "rr"],
          ...[1, 2, 3, 4].map((k) => ["-a", "-t", svc, "-r", `${rsIp(k)}:80`, "-m"]),
        ],
      };
    }
    case "fullnat": {
      const lab = new NatLab({ prefix, servers: 2, backend, rsRoute: false });
      return {
        lab,
        title:
          "FULLNAT: the real servers have no route to the client; PROXY protocol v1 tells them who it is",
        commands: [
          ["-A", "-t", svc, "-s", "rr"],
          ["--add-laddr", "-t", svc, "-z", "192.168.10.200"],
          ...[1, 2].map((k) => ["-a", "-t", svc, "-r", `${rsIp(k)}:80`, "--fullnat"]),
          ["-A", "-t", `${VIP}:81`, "-s", "rr", "--proxy-protocol", "v1"],
          ["--add-laddr", "-t", `${VIP}:81`, "-z", "192.168.10.200"],
          ["-a", "-t", `${VIP}:81`, "-r", `${rsIp(1)}:8082`, "--fullnat"],
        ],
      };
    }
    case "dr":
    case "tun": {
      const lab = new RoutedLab({ prefix, mode: name });
      const flag = name === "dr" ? "-g" : "-i";
      return {
        lab,
        title:
          name === "dr"
            ? "LVS-DR: client behind a router; director and two real servers (VIP on lo, arp_ignore) on one segment"
            : "LVS-TUN: client behind a router; real servers on another subnet, IPIP decapsulated by lvs-realserver",
        commands: [
          ["-A", "-t", svc, "-s", "rr"],
          ...[1, 2].map((k) => ["-a", "-t", svc, "-r", lab.rsIp(k), flag]),
        ],
      };
    }
  }
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const name = args.find((a) => !a.startsWith("-") && LABS.includes(a as LabName)) ?? "nat";
  const unknown = args.find(
    (a, i) =>
      !a.startsWith("-") && !LABS.includes(a as LabName) && !/^--(backend|requests)$/.test(args[i - 1] ?? ""),
  );
  if (unknown) {
    process.stderr.write(`lab: unknown lab '${unknown}' (available: ${LABS.join(", ")})\n`);
    return 2;
  }
  const backend = args.includes("--backend") && args[args.indexOf("--backend") + 1] === "raw" ? "raw" : "tap";
  const nIdx = args.indexOf("--requests");
  const requests = nIdx >= 0 ? Number(args[nIdx + 1]) : 8;
  const keep = args.includes("--keep");
  if (!canUseNetns()) {
    process.stderr.write("lab: needs root and the ip tool (network namespaces): run with sudo\n");
    return 2;
  }
  const p = plan(name as LabName, backend, `lab${process.pid % 10000}`);
  const lab = p.lab;
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
    say(`== ${p.title}; VIP ${VIP}`);
    await lab.up();
    for (const c of p.commands) {
      say(`# lvsadm ${c.join(" ")}`);
      const r = lab.lvsadm(...c);
      if (r.code !== 0) throw new Error(`lvsadm ${c.join(" ")}: ${r.stderr.trim()}`);
    }
    say("# lvsadm -Ln");
    process.stdout.write(lab.lvsadm("-Ln").stdout);
    say(`# client: ${requests} x curl http://${VIP}/`);
    for (let i = 1; i <= requests; i++)
      say(`  request ${i}: ${lab.get(`http://${VIP}/`).trim() || "(no answer)"}`);
    if (name === "fullnat") {
      say(
        `# client: curl http://${VIP}:81/ (PROXY v1 to the real server, which answers with the client's address)`,
      );
      say(`  ${lab.get(`http://${VIP}:81/`).trim() || "(no answer)"}`);
    }
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
