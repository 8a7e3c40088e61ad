/**
 * The native lvsadm client (native/lvsadm.c, build/Release/lvsadm) against the Node.js one
 * (`node bin/lvsadm`): the same command lines against two in-process control servers holding the
 * same table must print the same stdout and stderr and exit the same, step by step. The native
 * client runs with a PATH that has no node, so a command it handed to the Node.js client would
 * fail and show. Then: what the native client hands over (no daemon, --trace, --import, ...),
 * `lvsadm -Ln | head -1` (quiet, status 141), the bin/lvsadm launcher, lvsadm-save and
 * lvsadm-restore. Only Unix sockets in a temp directory: no namespace needed.
 */

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ControlServer, startControlServer } from "../../../src/control/server.js";
import { FwdMethod } from "../../../src/tables/model.js";
import { type FakeTarget, fakeTarget } from "../../control/fake.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const NATIVE = join(ROOT, "build", "Release", "lvsadm");
const BIN = join(ROOT, "bin", "lvsadm");
const BUILT = join(ROOT, "dist", "src", "tools", "cli", "lvsadm.js");
/** A PATH with node in it (for the Node.js client and the native client's fallback). */
const PATH_WITH_NODE = `${dirname(process.execPath)}:/usr/bin:/bin`;

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: Record<string, string>, stdin = ""): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(file, args, { env });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => {
      stdout += d;
    });
    p.stderr.on("data", (d) => {
      stderr += d;
    });
    p.on("error", reject);
    p.on("close", (status, signal) => resolve({ status, signal, stdout, stderr }));
    p.stdin.on("error", () => {}); // a client that does not read stdin may exit first
    p.stdin.end(stdin);
  });
}

/** The Node.js client. */
const nodeClient = (args: string[], env: Record<string, string>, stdin?: string) =>
  run(process.execPath, [BIN, ...args], { PATH: PATH_WITH_NODE, ...env }, stdin);

/** The native client; `alone`: with no node on PATH, so it cannot hand anything over. */
const nativeClient = (args: string[], env: Record<string, string>, stdin?: string, alone = true) =>
  run(NATIVE, args, { PATH: alone ? "/nonexistent" : PATH_WITH_NODE, ...env }, stdin);

const ready = existsSync(NATIVE) && existsSync(BUILT);
if (!ready) console.warn("skipping native lvsadm tests: build/Release/lvsadm or dist/ missing (npm ci)");

describe.skipIf(!ready)("native lvsadm client", () => {
  let dir: string;
  let a: { target: FakeTarget; server: ControlServer; path: string };
  let b: { target: FakeTarget; server: ControlServer; path: string };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lvsadm-native-"));
    const start = async (name: string) => {
      const target = fakeTarget();
      const path = join(dir, `${name}.sock`);
      return { target, path, server: await startControlServer(path, target) };
    };
    a = await start("a");
    b = await start("b");
  });
  afterAll(async () => {
    await a?.server.close();
    await b?.server.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Command lines lvsd answers by itself, in an order where each one changes or reads the table. */
  const STEPS: { argv: string[]; stdin?: string }[] = [
    { argv: [] },
    { argv: ["-Ln"] },
    { argv: ["-v"] },
    { argv: ["-h"] },
    { argv: ["--version"] },
    { argv: ["-A", "-t", "10.0.0.1:80", "-s", "rr"] },
    { argv: ["-A", "-t", "10.0.0.1:80", "-s", "rr"] },
    { argv: ["-A", "-t", "10.0.0.3:80", "-s", "nosuch"] },
    { argv: ["-A", "-t", "10.0.0.2"] },
    { argv: ["-At", "10.0.0.4:https", "-p600", "-M", "255.255.255.0"] },
    { argv: ["-A", "-u", "10.0.0.1:53", "-o", "-s", "sh", "-b", "sh-port"] },
    { argv: ["-A", "-f", "1"] },
    { argv: ["-a", "-t", "10.0.0.1:80", "-r", "192.168.1.1:8080", "-m", "-w", "2"] },
    { argv: ["-a", "-t", "10.0.0.1:80", "-r", "192.168.1.2", "-x", "100", "-y", "5"] },
    { argv: ["-a", "-t", "10.0.0.9:80", "-r", "1.1.1.1"] },
    { argv: ["-a", "-t", "10.0.0.1:80", "-r", "224.0.0.1"] },
    { argv: ["-e", "-t", "10.0.0.1:80", "-r", "192.168.1.2", "-w", "70000"] },
    // host names, looked up as ipvsadm does (localhost: /etc/hosts, no DNS needed)
    { argv: ["-A", "-t", "localhost:8081", "-s", "rr"] },
    { argv: ["-a", "-t", "localhost:8081", "-r", "localhost:80", "-m"] },
    { argv: ["-Ln", "-t", "127.0.0.1:8081"] },
    { argv: ["-A", "-t", "nonexistent.invalid:80"] },
    { argv: ["-L"] },
    { argv: ["-Ln"] },
    { argv: ["-Ln", "--stats"] },
    { argv: ["-Ln", "--rate", "--exact"] },
    { argv: ["-L", "-n", "--thresholds"] },
    { argv: ["-Ln", "--persistent-conn"] },
    { argv: ["-Lnc"] },
    { argv: ["-L", "--timeout"] },
    { argv: ["-L", "--daemon"] },
    { argv: ["-L", "-t", "10.0.0.1:80"] },
    { argv: ["-L", "-t", "10.0.0.9:80"] },
    { argv: ["-S"] },
    { argv: ["-Sn"] },
    { argv: ["-Q"] },
    { argv: ["--foo"] },
    { argv: ["-L", "-t"] },
    { argv: ["-A"] },
    { argv: ["-L", "-c", "--stats"] },
    { argv: ["-L", 'odd "word" \\ é\t\u0001'] },
    { argv: ["--drops"] },
    { argv: ["--links"] },
    { argv: ["--sysctl"] },
    { argv: ["--sysctl", "sloppy_tcp=1"] },
    { argv: ["--sysctl", "sloppy_tcp", "-L"] },
    { argv: ["--sync"] },
    { argv: ["--proxy-protocol", "v3", "-A", "-t", "10.0.0.1:80"] },
    { argv: ["--get-laddr", "-t", "10.0.0.1:80"] },
    { argv: ["--health"] },
    { argv: ["--vrrp"] },
    { argv: ["--trace-status"] },
    { argv: ["--trace-stop"] },
    { argv: ["--set", "10", "20", "30"] },
    { argv: ["-L", "--timeout"] },
    { argv: ["-E", "-t", "10.0.0.1:80", "-s", "wlc", "-p"] },
    { argv: ["-Z"] },
    { argv: ["-Z", "-t", "10.0.0.7:80"] },
    { argv: ["-R"], stdin: "-A -t 10.0.0.5:80\n-a -t 10.0.0.5:80 -r 10.1.1.1 -m\n-A -t 10.0.0.5:80\n" },
    { argv: ["--restore"], stdin: "# a comment\nipvsadm -D -t 10.0.0.5:80\n-A -t 10.0.0.6:80 -s nosuch\n" },
    { argv: ["-R"], stdin: "-A -t 10.0.0.8:80\n-L -t 10.0.0.99:80\n-A -t 10.0.0.9:80\n" },
    { argv: ["-Sn"] },
    { argv: ["-D", "-t", "10.0.0.1:80"] },
    { argv: ["-D", "-t", "10.0.0.1:80"] },
    { argv: ["-C"] },
    { argv: ["-Ln"] },
  ];

  it("prints and exits exactly as the Node.js client for every command lvsd answers", async () => {
    const seen: string[] = [];
    for (const [i, step] of STEPS.entries()) {
      // half the steps name the socket with --control, half with $LVSD_CONTROL
      const viaFlag = i % 2 === 0;
      const argsFor = (path: string) => (viaFlag ? ["--control", path, ...step.argv] : step.argv);
      const envFor = (path: string): Record<string, string> => (viaFlag ? {} : { LVSD_CONTROL: path });
      const want = await nodeClient(argsFor(a.path), envFor(a.path), step.stdin);
      const got = await nativeClient(argsFor(b.path), envFor(b.path), step.stdin);
      expect({ step: step.argv, ...got }).toEqual({ step: step.argv, ...want });
      seen.push(`${want.status}:${want.stdout}${want.stderr}`);
    }
    // the steps did what they say (not two clients failing alike)
    const all = seen.join("\n");
    expect(all).toContain("0:lvsadm v0.1.0 (lvs-ts; ipvsadm v1.31 compatible");
    expect(all).toContain("255:Service already exists");
    expect(all).toContain(
      "TCP  10.0.0.1:80 rr\n  -> 192.168.1.1:8080             Masq    2      0          0",
    );
    // the restores ran: 10.0.0.8 added, then `-L -t` of a missing service ended the third one
    expect(all).toContain("-A -t 10.0.0.8:80 -s wlc\n");
    expect(all).not.toContain("-A -t 10.0.0.9:80");
    expect(all).toContain("1:No such service");
    expect(all).toContain("TCP  127.0.0.1:8081 rr\n  -> 127.0.0.1:80 ");
    expect(all).toContain("2:illegal virtual server address[:port] specified");
    expect(b.target.table.list().map((s) => s.addr)).toEqual(a.target.table.list().map((s) => s.addr));
    expect(a.target.table.list()).toHaveLength(0); // the last -C
  });

  it("hands over to the Node.js client what lvsd does not answer, with the same result", async () => {
    const none = join(dir, "none.sock");
    const cases: { argv: string[]; env?: Record<string, string>; stdin?: string }[] = [
      { argv: ["-Ln"], env: { LVSD_CONTROL: none } },
      { argv: ["-h"], env: { LVSD_CONTROL: none } },
      { argv: ["-Q"], env: { LVSD_CONTROL: none } },
      { argv: ["-R"], env: { LVSD_CONTROL: none }, stdin: "-A -t 10.0.0.1:80\n" },
      { argv: ["--control", none, "-A", "-t", "10.0.0.1:80"] },
      { argv: ["--control"] },
      { argv: ["-L", "--control="] },
      { argv: ["--control", a.path, "--import", "rel/keepalived.conf"] },
      { argv: ["--control", a.path, "--trace", "out.pcapng", "--count", "1"] },
      { argv: ["--control", a.path, "-Rn"], stdin: "-A -t 10.0.0.1:80\n" },
      { argv: ["--control", a.path, "-L", "-R"] },
    ];
    for (const c of cases) {
      const want = await nodeClient(c.argv, c.env ?? {}, c.stdin);
      const got = await nativeClient(c.argv, c.env ?? {}, c.stdin, false);
      expect({ argv: c.argv, ...got }).toEqual({ argv: c.argv, ...want });
      // and it needs node for them: without it, it says it cannot run the Node.js client
      const alone = await nativeClient(c.argv, c.env ?? {}, c.stdin, true);
      expect(alone.stderr).toContain("lvsadm: cannot run the Node.js client");
      expect(alone.status).toBe(2);
    }
    const noDaemon = await nativeClient(["-Ln"], { LVSD_CONTROL: none }, "", false);
    expect(noDaemon).toMatchObject({
      status: 2,
      stderr: `lvsadm: cannot connect to lvsd at ${none}: no such socket (is lvsd running?)\n`,
    });
  });

  it("streamed replies: {out} pieces are printed in order before the final line", async () => {
    const { createServer } = await import("node:net");
    const path = join(dir, "stream.sock");
    const requests: unknown[] = [];
    const srv = createServer((s) => {
      s.once("data", (d) => {
        requests.push(JSON.parse(d.toString()));
        s.write('{"out":"one\\n"}\n{"out":"two \\u00e9 \\ud83d\\ude00\\n"}\n');
        setTimeout(() => s.end('{"stdout":"three\\n","stderr":"warn\\n","code":3}\n'), 20);
      });
    });
    await new Promise<void>((r) => srv.listen(path, r));
    try {
      for (const client of [nodeClient, nativeClient]) {
        const r = await client(["--control", path, "-Ln"], {});
        expect(r).toEqual({ status: 3, signal: null, stdout: "one\ntwo é 😀\nthree\n", stderr: "warn\n" });
      }
      expect(requests).toEqual([
        { argv: ["-Ln"], stream: true },
        { argv: ["-Ln"], stream: true },
      ]);
    } finally {
      srv.close();
    }
  });
});

describe.skipIf(!existsSync(BUILT))("lvsadm output to a closed pipe (lvsadm -Ln | head -1)", () => {
  let dir: string;
  let server: ControlServer;
  let path: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lvsadm-epipe-"));
    path = join(dir, "c.sock");
    const target = fakeTarget();
    // thousands of services: a listing far larger than a pipe's 64 KiB
    for (let i = 0; i < 4000; i++) {
      const svc = { proto: 6, addr: (10 << 24) + i + 1, port: 80, fwmark: 0 };
      target.table.addService(svc, { sched: "wlc", flags: 0, timeout: 0, netmask: 0xffffffff });
      const dest = { addr: ((192 << 24) >>> 0) + (168 << 16) + i, port: 80, weight: 1 };
      target.table.addDest(svc, { ...dest, fwd: FwdMethod.MASQ, uThreshold: 0, lThreshold: 0 });
    }
    server = await startControlServer(path, target);
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Start the client, read its first chunk, close the pipe. */
  function firstChunkThenClose(file: string, args: string[], env: Record<string, string>): Promise<Run> {
    return new Promise((resolve, reject) => {
      const p = spawn(file, args, { env });
      let stdout = "";
      let stderr = "";
      p.stdout.once("data", (d) => {
        stdout += d;
        p.stdout.destroy();
      });
      p.stderr.on("data", (d) => {
        stderr += d;
      });
      p.on("error", reject);
      p.on("close", (status, signal) => resolve({ status, signal, stdout, stderr }));
    });
  }

  const clients: [string, string, string[], Record<string, string>][] = [
    ["node", process.execPath, [BIN], { PATH: PATH_WITH_NODE }],
    ...(existsSync(NATIVE)
      ? [
          ["native", NATIVE, [], { PATH: "/nonexistent" }] as [
            string,
            string,
            string[],
            Record<string, string>,
          ],
        ]
      : []),
  ];
  for (const [name, file, pre, env] of clients) {
    it(`${name} client: no message, exit status 141`, async () => {
      const r = await firstChunkThenClose(file, [...pre, "--control", path, "-Ln"], env);
      expect(r.stdout.startsWith("IP Virtual Server version 1.2.1 (size=4096)\n")).toBe(true);
      expect(r.stdout.length).toBeLessThan(300_000); // it stopped: the whole listing is longer
      expect(r.stderr).toBe("");
      expect(r.status).toBe(141);
    });
  }

  it("through a shell pipe: the first line and nothing on stderr", async () => {
    const r = await run("/bin/sh", ["-c", '"$0" --control "$1" -Ln | head -1', BIN, path], {
      PATH: PATH_WITH_NODE,
    });
    expect(r.stdout).toBe("IP Virtual Server version 1.2.1 (size=4096)\n");
    expect(r.stderr).toBe("");
  });
});

describe.skipIf(!ready)("bin/lvsadm, lvsadm-save, lvsadm-restore", () => {
  let dir: string;
  let server: ControlServer;
  let target: FakeTarget;
  let path: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lvsadm-bin-"));
    path = join(dir, "c.sock");
    target = fakeTarget();
    server = await startControlServer(path, target);
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("bin/lvsadm runs the native client when it is built, also through a symbolic link", async () => {
    const link = join(dir, "bin-link");
    await symlink(BIN, link);
    for (const file of [BIN, link]) {
      // no node on PATH: only the native client can answer
      const r = await run(file, ["--control", path, "-A", "-t", "10.9.0.1:80"], { PATH: "/usr/bin:/bin" });
      expect(r).toEqual({ status: 0, signal: null, stdout: "", stderr: "" });
      const l = await run(file, ["--control", path, "-Ln"], { PATH: "/usr/bin:/bin" });
      expect(l.stdout).toContain("TCP  10.9.0.1:80 wlc\n");
      target.table.clear();
    }
  });

  it("bin/lvsadm runs the Node.js client where no native client is built", async () => {
    const root = join(dir, "copy");
    await mkdir(join(root, "bin"), { recursive: true });
    await copyFile(BIN, join(root, "bin", "lvsadm"));
    await chmod(join(root, "bin", "lvsadm"), 0o755);
    await symlink(join(ROOT, "dist"), join(root, "dist"));
    const r = await run(join(root, "bin", "lvsadm"), ["--control", path, "-L", "--timeout"], {
      PATH: PATH_WITH_NODE,
    });
    expect(r).toEqual({
      status: 0,
      signal: null,
      stdout: "Timeout (tcp tcpfin udp): 900 120 300\n",
      stderr: "",
    });
    const noNode = await run(join(root, "bin", "lvsadm"), ["-v"], { PATH: "/nonexistent" });
    expect(noNode.status).toBe(127); // sh: node: not found
  });

  it("lvsadm-save -n > file; lvsadm-restore < file: the table comes back, and only it", async () => {
    const lvsadm = (...args: string[]) => run(BIN, ["--control", path, ...args], { PATH: PATH_WITH_NODE });
    expect((await lvsadm("-A", "-t", "10.0.0.1:80", "-s", "rr")).status).toBe(0);
    expect((await lvsadm("-a", "-t", "10.0.0.1:80", "-r", "192.168.1.1:8080", "-m", "-w", "3")).status).toBe(
      0,
    );
    expect((await lvsadm("-A", "-u", "10.0.0.1:53", "-s", "wlc", "-p", "600")).status).toBe(0);

    const save = join(ROOT, "bin", "lvsadm-save");
    const restore = join(ROOT, "bin", "lvsadm-restore");
    const saved = await run(save, ["-n", "--control", path], { PATH: PATH_WITH_NODE });
    expect(saved).toMatchObject({ status: 0, stderr: "" });
    expect(saved.stdout).toBe((await lvsadm("-Sn")).stdout);
    expect(saved.stdout).toBe(
      "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.1.1:8080 -m -w 3\n-A -u 10.0.0.1:53 -s wlc -p 600\n",
    );
    // without -n: lvsadm -S, port names
    expect((await run(save, ["--control", path], { PATH: PATH_WITH_NODE })).stdout).toBe(
      (await lvsadm("-S")).stdout,
    );
    const file = join(dir, "rules");
    await writeFile(file, `# saved by lvsadm-save\n${saved.stdout}`);

    // changes after the save: restore must undo them (it clears first)
    expect((await lvsadm("-A", "-t", "10.0.0.2:80")).status).toBe(0);
    expect((await lvsadm("-D", "-u", "10.0.0.1:53")).status).toBe(0);
    const r = await run("/bin/sh", ["-c", '"$0" --control "$1" < "$2"', restore, path, file], {
      PATH: PATH_WITH_NODE,
    });
    expect(r).toEqual({ status: 0, signal: null, stdout: "", stderr: "" });
    expect((await lvsadm("-Sn")).stdout).toBe(
      await readFile(file, "utf8").then((t) => t.split("\n").slice(1).join("\n")),
    );

    // a failing rule: printed, the others applied, lvsadm -R's status
    const bad = await run(
      "/bin/sh",
      [
        "-c",
        'printf "%s\\n" "-A -t 10.0.0.3:80 -s nosuch" "-A -t 10.0.0.4:80" | "$0" --control "$1"',
        restore,
        path,
      ],
      {
        PATH: PATH_WITH_NODE,
      },
    );
    expect(bad.stderr).toBe("Scheduler or persistence engine not found\n");
    expect((await lvsadm("-Sn")).stdout).toBe("-A -t 10.0.0.4:80 -s wlc\n");

    // empty input: the table is cleared, as ipvsadm-restore does
    const empty = await run("/bin/sh", ["-c", '"$0" --control "$1" < /dev/null', restore, path], {
      PATH: PATH_WITH_NODE,
    });
    expect(empty.status).toBe(0);
    expect(target.table.list()).toHaveLength(0);
  });
});
