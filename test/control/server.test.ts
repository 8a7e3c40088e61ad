/**
 * lvsd's control socket and the lvsadm client, end to end over a Unix socket in a temp
 * directory: the server runs in-process, the client is called as a function (and, when the
 * project is built, as bin/lvsadm).
 */

import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { usageText } from "../../src/control/commands.js";
import {
  type ControlServer,
  ControlServerError,
  handleRequestLine,
  startControlServer,
} from "../../src/control/server.js";
import { runClient, sendRequest, splitControlOption } from "../../src/tools/cli/lvsadm.js";
import { type FakeTarget, fakeTarget } from "./fake.js";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

interface Captured {
  out: string;
  err: string;
}

async function lvsadm(
  argv: string[],
  opts: { env?: Record<string, string>; stdin?: string } = {},
): Promise<Captured & { code: number }> {
  const c: Captured = { out: "", err: "" };
  const code = await runClient(argv, {
    write: (s) => {
      c.out += s;
    },
    writeErr: (s) => {
      c.err += s;
    },
    readStdin: async () => opts.stdin ?? "",
    env: opts.env ?? {},
  });
  return { ...c, code };
}

/** Raw protocol: send lines, collect `n` reply lines. */
function rawExchange(path: string, payload: string, n: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let buf = "";
    s.on("connect", () => s.write(payload));
    s.on("data", (d) => {
      buf += d.toString();
      const lines = buf.split("\n").filter(Boolean);
      if (lines.length >= n) {
        s.destroy();
        resolve(lines);
      }
    });
    s.on("error", reject);
  });
}

describe("control server and lvsadm client", () => {
  let dir: string;
  let path: string;
  let target: FakeTarget;
  let server: ControlServer;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "lvsadm-test-"));
    path = join(dir, "run", "lvsd", "control.sock");
    target = fakeTarget();
    server = await startControlServer(path, target);
  });

  afterEach(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("creates the directory (0700) and the socket (0600)", async () => {
    expect((await stat(path)).isSocket()).toBe(true);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(dirname(path))).mode & 0o777).toBe(0o700);
  });

  it("runs commands sent by lvsadm and prints the replies", async () => {
    expect(await lvsadm(["--control", path, "-A", "-t", "10.0.0.1:80", "-s", "rr"])).toEqual({
      out: "",
      err: "",
      code: 0,
    });
    expect(
      await lvsadm([`--control=${path}`, "-a", "-t", "10.0.0.1:80", "-r", "192.168.1.1", "-m", "-w", "2"]),
    ).toMatchObject({
      code: 0,
    });
    expect(await lvsadm(["-Ln"], { env: { LVSD_CONTROL: path } })).toEqual({
      out:
        "IP Virtual Server version 1.2.1 (size=4096)\n" +
        "Prot LocalAddress:Port Scheduler Flags\n" +
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
        "TCP  10.0.0.1:80 rr\n" +
        "  -> 192.168.1.1:80               Masq    2      0          0         \n",
      err: "",
      code: 0,
    });
    expect(target.table.list()).toHaveLength(1);
  });

  it("--control wins over LVSD_CONTROL", async () => {
    const r = await lvsadm(["-L", "--timeout", "--control", path], {
      env: { LVSD_CONTROL: join(dir, "nope.sock") },
    });
    expect(r).toEqual({ out: "Timeout (tcp tcpfin udp): 900 120 300\n", err: "", code: 0 });
  });

  it("passes the daemon's errors and exit status through", async () => {
    expect(await lvsadm(["--control", path, "-a", "-t", "10.0.0.9:80", "-r", "192.168.1.1", "-m"])).toEqual({
      out: "",
      err: "Service not defined\n",
      code: 255,
    });
  });

  it("sends stdin with -R", async () => {
    const stdin = "-A -t 10.0.0.1:80 -s rr\nipvsadm -a -t 10.0.0.1:80 -r 192.168.1.1 -m\n";
    expect(await lvsadm(["--control", path, "-R"], { stdin })).toEqual({ out: "", err: "", code: 0 });
    expect((await lvsadm(["--control", path, "-Sn"])).out).toBe(
      "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 192.168.1.1:80 -m -w 1\n",
    );
  });

  it("carries large requests and replies (a 3000-service restore and its listing)", async () => {
    const lines: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const vip = `10.${(i >> 8) & 255}.${i & 255}.1:80`;
      lines.push(`-A -t ${vip} -s rr`, `-a -t ${vip} -r 192.168.${i & 255}.${(i >> 8) + 1}:8080 -m`);
    }
    expect(await lvsadm(["--control", path, "-R"], { stdin: `${lines.join("\n")}\n` })).toEqual({
      out: "",
      err: "",
      code: 0,
    });
    const listed = await lvsadm(["--control", path, "-Ln"]);
    expect(listed.code).toBe(0);
    expect(listed.out.split("\n")).toHaveLength(3 + 6000 + 1);
    expect(target.table.list()).toHaveLength(3000);
  });

  it("answers several requests on one connection, in order, and refuses bad ones", async () => {
    const replies = await rawExchange(
      path,
      `${JSON.stringify({ argv: ["-A", "-t", "10.0.0.1:80"] })}\n` +
        "not json\n" +
        `${JSON.stringify({ argv: "-L" })}\n` +
        `${JSON.stringify({ argv: ["-L", "--timeout"] })}\n`,
      4,
    );
    expect(replies.map((l) => JSON.parse(l))).toEqual([
      { stdout: "", stderr: "", code: 0 },
      {
        stdout: "",
        stderr: expect.stringMatching(/^lvsd: bad control request: request is not JSON/),
        code: 2,
      },
      { stdout: "", stderr: "lvsd: bad control request: request needs argv: an array of strings\n", code: 2 },
      { stdout: "Timeout (tcp tcpfin udp): 900 120 300\n", stderr: "", code: 0 },
    ]);
  });

  it("refuses a request larger than the limit", async () => {
    await server.close();
    server = await startControlServer(path, target, { maxRequestBytes: 1024 });
    const [reply] = await rawExchange(path, `{"argv": ["-R"], "stdin": "${"x".repeat(4096)}`, 1);
    expect(JSON.parse(reply ?? "")).toEqual({
      stdout: "",
      stderr: "lvsd: control request larger than 1024 bytes\n",
      code: 2,
    });
  });

  it("refuses a second server on the same socket, and the first keeps working", async () => {
    await expect(startControlServer(path, fakeTarget())).rejects.toMatchObject({
      name: "ControlServerError",
      code: "EADDRINUSE",
      message: `lvsd: another lvsd is already running: its control socket ${path} accepts connections`,
    });
    expect((await lvsadm(["--control", path, "-L", "--timeout"])).code).toBe(0);
  });

  it("removes the socket on close; lvsadm then says it cannot connect (exit 2)", async () => {
    await server.close();
    expect(existsSync(path)).toBe(false);
    expect(await lvsadm(["--control", path, "-Ln"])).toEqual({
      out: "",
      err: `lvsadm: cannot connect to lvsd at ${path}: no such socket (is lvsd running?)\n`,
      code: 2,
    });
  });

  it("reports every request to onRequest", async () => {
    await server.close();
    const seen: string[] = [];
    server = await startControlServer(path, target, {
      onRequest: (req, res) => seen.push(`${req.argv.join(" ")}=${res.code}`),
    });
    await lvsadm(["--control", path, "-D", "-t", "10.0.0.1:80"]);
    expect(seen).toEqual(["-D -t 10.0.0.1:80=255"]);
  });
});

describe("claiming the socket path", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "lvsadm-test-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("removes a stale socket left by a killed lvsd", async () => {
    const path = join(dir, "control.sock");
    // a process that listens and is killed -9 leaves its socket file behind
    const child = spawn(
      process.execPath,
      ["-e", `require("net").createServer().listen(${JSON.stringify(path)}, () => console.log("up"))`],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    expect((await stat(path)).isSocket()).toBe(true);

    const server = await startControlServer(path, fakeTarget());
    try {
      expect((await lvsadm(["--control", path, "-L", "--timeout"])).code).toBe(0);
    } finally {
      await server.close();
    }
  });

  it("never replaces a path that is not a socket", async () => {
    const path = join(dir, "control.sock");
    await writeFile(path, "precious");
    await expect(startControlServer(path, fakeTarget())).rejects.toEqual(
      new ControlServerError("ENOTSOCK", `lvsd: ${path} exists and is not a socket; not replacing it`),
    );
    expect((await stat(path)).isFile()).toBe(true);
  });
});

describe("lvsadm without a daemon", () => {
  const nowhere = "/nonexistent-lvsd-dir/control.sock";

  it("prints -h and -v locally", async () => {
    expect(await lvsadm(["--control", nowhere, "-h"])).toEqual({ out: usageText(), err: "", code: 0 });
    expect((await lvsadm(["-v"], { env: { LVSD_CONTROL: nowhere } })).out).toMatch(/^lvsadm v/);
  });

  it("reports bad command lines itself, with ipvsadm's status", async () => {
    expect(await lvsadm(["--control", nowhere, "-A"])).toEqual({
      out: "",
      err: "You need to supply the 'service-address' option for the 'add-service' command\n",
      code: 2,
    });
    expect(await lvsadm(["--control", nowhere, "-n"])).toEqual({
      out: "",
      err: "Try `lvsadm -h' or 'lvsadm --help' for more information.\n",
      code: 255,
    });
  });

  it("says it cannot connect, with exit 2", async () => {
    expect(await lvsadm(["-Ln"], { env: { LVSD_CONTROL: nowhere } })).toEqual({
      out: "",
      err: `lvsadm: cannot connect to lvsd at ${nowhere}: no such socket (is lvsd running?)\n`,
      code: 2,
    });
  });

  it("needs a path after --control", async () => {
    expect(await lvsadm(["-Ln", "--control"])).toEqual({
      out: "",
      err: "lvsadm: --control needs a socket path\n",
      code: 2,
    });
    expect(splitControlOption(["--control=", "-L"]).error).toBe("lvsadm: --control needs a socket path");
    expect(splitControlOption(["-L", "--control", "/x", "-n"])).toEqual({
      argv: ["-L", "-n"],
      control: "/x",
    });
  });

  it("sendRequest rejects when nothing listens", async () => {
    await expect(sendRequest(nowhere, { argv: ["-L"] })).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("handleRequestLine", () => {
  it("validates the request shape", () => {
    const t = fakeTarget();
    expect(handleRequestLine("[]", t).stderr).toBe(
      "lvsd: bad control request: request needs argv: an array of strings\n",
    );
    expect(handleRequestLine('{"argv": ["-R"], "stdin": 5}', t).stderr).toBe(
      "lvsd: bad control request: request stdin must be a string\n",
    );
    expect(handleRequestLine('{"argv": ["-R"], "stdin": "-A -t 10.0.0.1:80\\n"}', t)).toEqual({
      stdout: "",
      stderr: "",
      code: 0,
    });
    expect(t.table.list()).toHaveLength(1);
  });
});

const BUILT = join(ROOT, "dist", "src", "tools", "cli", "lvsadm.js");

describe.skipIf(!existsSync(BUILT))("bin/lvsadm (built)", () => {
  it("works as a program: -h without a daemon, -Ln and exit codes through the socket", async () => {
    const dir = await mkdtemp(join(tmpdir(), "lvsadm-bin-"));
    const path = join(dir, "control.sock");
    const target = fakeTarget();
    const server = await startControlServer(path, target);
    const bin = join(ROOT, "bin", "lvsadm");
    try {
      const help = spawnSync(process.execPath, [bin, "-h"], {
        encoding: "utf8",
        env: { PATH: process.env.PATH },
      });
      expect(help.status).toBe(0);
      expect(help.stdout).toMatch(/^lvsadm v.*\nUsage:\n/);

      const run = (args: string[], input?: string) =>
        new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
          const p = spawn(process.execPath, [bin, "--control", path, ...args]);
          let stdout = "";
          let stderr = "";
          p.stdout.on("data", (d) => {
            stdout += d;
          });
          p.stderr.on("data", (d) => {
            stderr += d;
          });
          p.on("close", (status) => resolve({ status, stdout, stderr }));
          p.stdin.end(input ?? "");
        });
      expect(await run(["-R"], "-A -t 10.0.0.1:80 -s rr\n")).toEqual({ status: 0, stdout: "", stderr: "" });
      expect((await run(["-Ln"])).stdout).toContain("TCP  10.0.0.1:80 rr\n");
      expect(await run(["-D", "-t", "10.0.0.2:80"])).toEqual({
        status: 255,
        stdout: "",
        stderr: "No such service\n",
      });
      const none = spawnSync(process.execPath, [bin, "--control", join(dir, "none.sock"), "-Ln"], {
        encoding: "utf8",
      });
      expect(none.status).toBe(2);
      expect(none.stderr).toBe(
        `lvsadm: cannot connect to lvsd at ${join(dir, "none.sock")}: no such socket (is lvsd running?)\n`,
      );
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
