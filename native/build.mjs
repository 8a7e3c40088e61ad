// Builds the I/O addon (build/Release/lvs_io.node), lvsadm's native client (build/Release/lvsadm,
// native/lvsadm.c) and bench/e2e/tapcopy; npm runs this as the package's install script, so
// `npm ci` builds them with no manual step.
//
// It runs npm's own node-gyp. When npm has no `nodedir` configured, it points node-gyp at the
// headers installed next to this Node.js binary (so nothing is downloaded), if they are there.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";

const args = ["rebuild"];
if (!process.env.npm_config_nodedir) {
  const prefix = dirname(dirname(process.execPath));
  if (existsSync(join(prefix, "include", "node", "node_api.h"))) args.push(`--nodedir=${prefix}`);
}
const gyp = process.env.npm_config_node_gyp;
const r = gyp
  ? spawnSync(process.execPath, [gyp, ...args], { stdio: "inherit" })
  : spawnSync("node-gyp", args, { stdio: "inherit" });
if (r.status !== 0) {
  console.error(
    "lvs-ts: building the native I/O addon failed (needs python3, make, g++ and Node's headers).\n" +
      "The TAP and AF_PACKET backends (src/datapath/io/tap.ts, src/datapath/io/rawsock.ts) will not load until it builds,\n" +
      "and bin/lvsadm runs the Node.js client (about 0.25 s a command instead of a few ms);\n" +
      "retry with: npm run install  (or: npx node-gyp rebuild)",
  );
  process.exit(r.status ?? 1);
}
