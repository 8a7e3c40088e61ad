/**
 * The control socket's events (src/control/server.ts with a `log`): which commands count as
 * changes (info) and which only read (debug), the fields of `control.command`, and the peer's
 * credentials read with SO_PEERCRED on a real Unix socket (the client here is this process).
 */

import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { EventLog, LogFields } from "../../../src/control/observe/log.js";
import {
  type ControlServer,
  handleRequestLine,
  isChange,
  type PeerCred,
  startControlServer,
} from "../../../src/control/server.js";
import { nativeAvailable } from "../../../src/datapath/io/native.js";
import { fakeTarget } from "../fake.js";

interface Logged {
  level: string;
  fields: LogFields;
  msg: string;
}

function recorder(): { log: EventLog; got: Logged[] } {
  const got: Logged[] = [];
  const at =
    (level: string) =>
    (fields: LogFields, msg: string): void => {
      got.push({ level, fields, msg });
    };
  return { log: { error: at("error"), warn: at("warn"), info: at("info"), debug: at("debug") }, got };
}

describe("isChange", () => {
  it.each([
    ["-A -t 10.0.0.1:80 -s rr"],
    ["--add-service -t 10.0.0.1:80"],
    ["-E -t 10.0.0.1:80 -s wlc"],
    ["-D -t 10.0.0.1:80"],
    ["-C"],
    ["--clear"],
    ["-R"],
    ["-a -t 10.0.0.1:80 -r 192.168.10.1:80 -m"],
    ["-e -t 10.0.0.1:80 -r 192.168.10.1:80 -w 3"],
    ["-d -t 10.0.0.1:80 -r 192.168.10.1:80"],
    ["-Z"],
    ["-Z -t 10.0.0.1:80"],
    ["--set 900 120 300"],
    ["--import /etc/keepalived/keepalived.conf"],
    ["--add-laddr -t 10.0.0.1:80 -z 10.0.0.5"],
    ["--del-laddr -t 10.0.0.1:80 -z 10.0.0.5"],
    ["-A -t 10.0.0.1:80 --fullnat --proxy-protocol v2"],
    ["--start-daemon master"],
    ["--stop-daemon master"],
    ["--sysctl sync_threshold=3,50"],
    // refused by the parser, but an attempt to change the director
    ["-A -t 10.0.0.1:80 -s nosuch"],
    ["-A -t 10.0.0.300:80"],
    ["-a -t 10.0.0.1:80"],
    ["--add-server -t 10.0.0.1:80"],
    ["--import"],
    ["--add-laddr -t 10.0.0.1:80"],
  ])("%s changes the director", (cmd) => {
    expect(isChange(cmd.split(" "))).toBe(true);
  });

  it.each([
    [""],
    ["-L"],
    ["-Ln"],
    ["-l -n --stats"],
    ["-Ln --rate -t 10.0.0.1:80"],
    ["-L -c"],
    ["-L --timeout"],
    ["-L --daemon"],
    ["-S"],
    ["-Sn"],
    ["--save -n"],
    ["--drops"],
    ["--links"],
    ["--sync"],
    ["--sysctl"],
    ["--sysctl sync_threshold"],
    ["--health"],
    ["--get-laddr -t 10.0.0.1:80"],
    ["-h"],
    ["--help"],
    ["-v"],
    ["-L --bogus"],
  ])("'%s' only reads", (cmd) => {
    expect(isChange(cmd === "" ? [] : cmd.split(" "))).toBe(false);
  });
});

describe("control.command events", () => {
  const PEER: PeerCred = { pid: 4242, uid: 0, gid: 0 };

  it("a change: info, with argv, code, the peer; the message says it all", () => {
    const { log, got } = recorder();
    const target = fakeTarget();
    const req = JSON.stringify({ argv: ["-A", "-t", "10.0.0.1:80", "-s", "rr"] });
    expect(handleRequestLine(req, target, { log }, PEER).code).toBe(0);
    expect(got).toEqual([
      {
        level: "info",
        fields: {
          event: "control.command",
          argv: ["-A", "-t", "10.0.0.1:80", "-s", "rr"],
          code: 0,
          change: true,
          peer: PEER,
        },
        msg: "control: -A -t 10.0.0.1:80 -s rr: exit 0 (pid 4242 uid 0 gid 0)",
      },
    ]);
  });

  it("a failed change carries the error; a listing is debug; no peer, no peer field", () => {
    const { log, got } = recorder();
    const target = fakeTarget();
    handleRequestLine(JSON.stringify({ argv: ["-D", "-t", "10.0.0.9:80"] }), target, { log }, PEER);
    handleRequestLine(JSON.stringify({ argv: ["-Ln"] }), target, { log });
    expect(got).toEqual([
      {
        level: "info",
        fields: {
          event: "control.command",
          argv: ["-D", "-t", "10.0.0.9:80"],
          code: 255,
          change: true,
          peer: PEER,
          error: "No such service",
        },
        msg: "control: -D -t 10.0.0.9:80: exit 255 (pid 4242 uid 0 gid 0)",
      },
      {
        level: "debug",
        fields: { event: "control.command", argv: ["-Ln"], code: 0, change: false },
        msg: "control: -Ln: exit 0",
      },
    ]);
  });

  it("-R logs the size of its input, not the input; odd words are quoted in the message", () => {
    const { log, got } = recorder();
    const stdin = "-A -t 10.0.0.1:80 -s rr\n-A -t 10.0.0.2:80 -s rr\n";
    handleRequestLine(JSON.stringify({ argv: ["-R"], stdin }), fakeTarget(), { log });
    expect(got[0]?.fields).toEqual({
      event: "control.command",
      argv: ["-R"],
      code: 0,
      change: true,
      stdinBytes: 48,
    });
    got.length = 0;
    handleRequestLine(JSON.stringify({ argv: ["--import", "/tmp/a b.conf"] }), fakeTarget(), { log });
    expect(got[0]?.msg).toMatch(/^control: --import "\/tmp\/a b\.conf": exit 1/);
  });

  it("a malformed request is a warning", () => {
    const { log, got } = recorder();
    handleRequestLine("{nope", fakeTarget(), { log }, PEER);
    expect(got).toEqual([
      {
        level: "warn",
        fields: {
          event: "control.bad_request",
          error: expect.stringMatching(/^request is not JSON/),
          peer: PEER,
        },
        msg: expect.stringMatching(/^control: bad request: request is not JSON.* \(pid 4242 uid 0 gid 0\)$/),
      },
    ]);
  });

  it("onRequest still sees every request, now with the peer", () => {
    const seen: unknown[] = [];
    handleRequestLine(
      JSON.stringify({ argv: ["-C"] }),
      fakeTarget(),
      { onRequest: (_q, r, p) => seen.push([r.code, p]) },
      PEER,
    );
    expect(seen).toEqual([[0, PEER]]);
  });
});

describe.skipIf(!nativeAvailable())("over the socket", () => {
  let dir: string;
  let server: ControlServer | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "logctl-"));
  });
  afterEach(async () => {
    await server?.close();
    server = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("the peer is the connecting process (SO_PEERCRED)", async () => {
    const { log, got } = recorder();
    const path = join(dir, "c.sock");
    server = await startControlServer(path, fakeTarget(), { log });
    const reply = await new Promise<string>((resolve, reject) => {
      const s = connect(path);
      let buf = "";
      s.on("connect", () => s.write(`${JSON.stringify({ argv: ["-A", "-t", "10.0.0.1:80"] })}\n`));
      s.on("data", (d) => {
        buf += d.toString();
        if (buf.includes("\n")) {
          s.destroy();
          resolve(buf);
        }
      });
      s.on("error", reject);
    });
    expect(JSON.parse(reply)).toMatchObject({ code: 0 });
    expect(got).toHaveLength(1);
    expect(got[0]!.fields["peer"]).toEqual({
      pid: process.pid,
      uid: process.getuid?.(),
      gid: process.getgid?.(),
    });
  });
});
