/**
 * `--link raw=IFNAME,...,kernel=drop`: keep the host's own network stack away from the frames
 * that arrive on an interface lvsd owns. An AF_PACKET socket only listens: without this, every
 * frame lvsd forwards is also handed to the kernel's IPv4 code on that interface, which routes
 * it (the slow path, a route entry made and freed per packet), finds it is not for the host and
 * not to be forwarded, and drops it — costing about as much CPU as lvsd's own work per frame
 * (bench/RESULTS.md). An nftables chain on the interface's netdev ingress hook with policy drop
 * ends that: packet sockets (lvsd's) get each frame before the ingress hook runs, the kernel's
 * protocol handlers after it. lvsd adds the table when it opens the link and deletes it when it
 * exits; a table left by an lvsd that was killed is replaced at the next start.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const NFT_PATHS = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"];

/** The nft binary, or undefined when nftables is not installed. */
export function nftPath(): string | undefined {
  return NFT_PATHS.find((p) => existsSync(p));
}

/** The table lvsd keeps for interface `ifname` (nft identifiers: letters, digits, underscores). */
export function kernelDropTable(ifname: string): string {
  return `lvsd_kernel_drop_${ifname.replace(/[^A-Za-z0-9_]/g, "_")}`;
}

export class KernelIngressError extends Error {
  override readonly name = "KernelIngressError";
}

function runNft(nft: string, script: string): { ok: boolean; err: string } {
  const r = spawnSync(nft, ["-f", "-"], { input: script, encoding: "utf8", timeout: 10_000 });
  return { ok: r.status === 0, err: (r.stderr || r.error?.message || "").trim() };
}

/**
 * Drop what arrives on `ifname` before the host's protocol handlers see it (lvsd's packet socket
 * still gets it). Returns the function that undoes it. Throws KernelIngressError without nft or
 * when nft refuses (no netdev ingress support).
 */
export function dropKernelIngress(ifname: string): () => void {
  const nft = nftPath();
  if (nft === undefined)
    throw new KernelIngressError(
      `kernel=drop on ${ifname} needs the nft command (Debian package nftables); not found in ${NFT_PATHS.join(", ")}`,
    );
  const table = kernelDropTable(ifname);
  // add + delete first: replaces a table a killed lvsd left, in the same atomic batch
  const script = [
    `add table netdev ${table}`,
    `delete table netdev ${table}`,
    `table netdev ${table} {`,
    "  chain ingress {",
    `    type filter hook ingress device "${ifname}" priority filter; policy drop;`,
    "  }",
    "}",
    "",
  ].join("\n");
  const r = runNft(nft, script);
  if (!r.ok) throw new KernelIngressError(`kernel=drop on ${ifname}: nft refused: ${r.err}`);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    runNft(nft, `delete table netdev ${table}\n`);
  };
}
