/**
 * ipvsadm's command line: argv -> Command, or ipvsadm's exact error text and exit status.
 * The cases follow ipvsadm 1.31's parse_options()/process_options() and the tutorials' usage.
 */

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  COMMANDS_V_OPTIONS,
  type Command,
  IPV6_REFUSED,
  OPT_NAMES,
  parseArgs,
  tryHelpMessage,
} from "../../src/control/ipvsadm.js";
import { inetAton, ipToString, parseServices, stringToNumber } from "../../src/control/netdb.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../src/lib/proto.js";
import {
  FwdMethod,
  SVC_F_ONEPACKET,
  SVC_F_PERSISTENT,
  SVC_F_SCHED1,
  SVC_F_SCHED2,
  SVC_F_SCHED3,
} from "../../src/tables/model.js";
import { ip, TEST_SERVICES } from "./fake.js";

const parse = (argv: string[], inRestore = false) => parseArgs(argv, { services: TEST_SERVICES, inRestore });

function cmdOf(argv: string[]): Command {
  const r = parse(argv);
  if (!r.ok) throw new Error(`expected ${argv.join(" ")} to parse, got: ${r.error.message}`);
  return r.cmd;
}

const VIP = { proto: IPPROTO_TCP, addr: ip("10.0.0.1"), port: 80 };
const FMT = {
  numeric: false,
  stats: false,
  rate: false,
  thresholds: false,
  persistentConn: false,
  nosort: false,
  exact: false,
  tunInfo: false,
};

describe("commands parse into typed commands", () => {
  const cases: [string, string[], Command][] = [
    ["no arguments lists the table", [], { kind: "list", what: "services", format: FMT }],
    ["-L", ["-L"], { kind: "list", what: "services", format: FMT }],
    ["-l", ["-l"], { kind: "list", what: "services", format: FMT }],
    ["--list", ["--list"], { kind: "list", what: "services", format: FMT }],
    ["-Ln bundles", ["-Ln"], { kind: "list", what: "services", format: { ...FMT, numeric: true } }],
    ["-lnc bundles", ["-lnc"], { kind: "list", what: "conns", format: { ...FMT, numeric: true } }],
    ["-L --timeout", ["-L", "--timeout"], { kind: "list", what: "timeout", format: FMT }],
    ["-L --daemon", ["-L", "--daemon"], { kind: "list", what: "daemon", format: FMT }],
    [
      "-Ln --stats --exact --nosort",
      ["-Ln", "--stats", "--exact", "--nosort"],
      {
        kind: "list",
        what: "services",
        format: { ...FMT, numeric: true, stats: true, exact: true, nosort: true },
      },
    ],
    [
      "--sort is a no-op",
      ["-L", "--sort", "--rate"],
      { kind: "list", what: "services", format: { ...FMT, rate: true } },
    ],
    [
      "-L --thresholds / --persistent-conn / --tun-info",
      ["-L", "--thresholds", "--persistent-conn", "--tun-info"],
      {
        kind: "list",
        what: "services",
        format: { ...FMT, thresholds: true, persistentConn: true, tunInfo: true },
      },
    ],
    [
      "-Lnc --persistent-conn is allowed",
      ["-Lnc", "--persistent-conn"],
      { kind: "list", what: "conns", format: { ...FMT, numeric: true, persistentConn: true } },
    ],
    [
      "-L -t VIP:PORT lists one service",
      ["-L", "-t", "10.0.0.1:80", "-n"],
      { kind: "list", what: "services", svc: VIP, format: { ...FMT, numeric: true } },
    ],
    [
      "-A with defaults: wlc, no persistence, /32 mask",
      ["-A", "-t", "10.0.0.1:80"],
      { kind: "add-service", svc: VIP, opts: { sched: "wlc", flags: 0, timeout: 0, netmask: 0xffffffff } },
    ],
    [
      "-A -p without a value is 360 s",
      ["-A", "-t", "10.0.0.1:80", "-s", "rr", "-p"],
      {
        kind: "add-service",
        svc: VIP,
        opts: { sched: "rr", flags: SVC_F_PERSISTENT, timeout: 360, netmask: 0xffffffff },
      },
    ],
    [
      "-p takes the next word unless it starts with -",
      ["-A", "-t", "10.0.0.1:80", "-p", "600", "-M", "255.255.255.0"],
      {
        kind: "add-service",
        svc: VIP,
        opts: { sched: "wlc", flags: SVC_F_PERSISTENT, timeout: 600, netmask: 0xffffff00 },
      },
    ],
    [
      "-p followed by an option has no value",
      ["-A", "-t", "10.0.0.1:80", "-p", "-s", "lc"],
      {
        kind: "add-service",
        svc: VIP,
        opts: { sched: "lc", flags: SVC_F_PERSISTENT, timeout: 360, netmask: 0xffffffff },
      },
    ],
    [
      "-p glued value and the maximum 2678400",
      ["-A", "-t", "10.0.0.1:80", "-p2678400"],
      {
        kind: "add-service",
        svc: VIP,
        opts: { sched: "wlc", flags: SVC_F_PERSISTENT, timeout: 2678400, netmask: 0xffffffff },
      },
    ],
    [
      "--persistent=VALUE",
      ["--add-service", "--tcp-service=10.0.0.1:80", "--persistent=900", "--scheduler", "sh"],
      {
        kind: "add-service",
        svc: VIP,
        opts: { sched: "sh", flags: SVC_F_PERSISTENT, timeout: 900, netmask: 0xffffffff },
      },
    ],
    [
      "-At bundle takes the next word",
      ["-At", "10.0.0.1:80"],
      { kind: "add-service", svc: VIP, opts: { sched: "wlc", flags: 0, timeout: 0, netmask: 0xffffffff } },
    ],
    [
      "-t=ADDR glued with =",
      ["-A", "-t=10.0.0.1:80"],
      { kind: "add-service", svc: VIP, opts: { sched: "wlc", flags: 0, timeout: 0, netmask: 0xffffffff } },
    ],
    [
      "port 0 with persistence",
      ["-A", "-t", "10.0.0.1", "-p"],
      {
        kind: "add-service",
        svc: { ...VIP, port: 0 },
        opts: { sched: "wlc", flags: SVC_F_PERSISTENT, timeout: 360, netmask: 0xffffffff },
      },
    ],
    [
      "port names come from services(5)",
      ["-A", "-t", "10.0.0.1:http"],
      { kind: "add-service", svc: VIP, opts: { sched: "wlc", flags: 0, timeout: 0, netmask: 0xffffffff } },
    ],
    [
      "UDP with one-packet scheduling",
      ["-A", "-u", "10.0.0.1:domain", "-s", "rr", "-o"],
      {
        kind: "add-service",
        svc: { proto: IPPROTO_UDP, addr: ip("10.0.0.1"), port: 53 },
        opts: { sched: "rr", flags: SVC_F_ONEPACKET, timeout: 0, netmask: 0xffffffff },
      },
    ],
    [
      "fwmark service with sh flags",
      ["-A", "-f", "1", "-s", "sh", "-b", "sh-fallback,sh-port"],
      {
        kind: "add-service",
        svc: { proto: IPPROTO_TCP, addr: 0, port: 0, fwmark: 1 },
        opts: { sched: "sh", flags: SVC_F_SCHED1 | SVC_F_SCHED2, timeout: 0, netmask: 0xffffffff },
      },
    ],
    [
      "fwmark with -o and generic flag-3",
      ["-A", "-f", "7", "-o", "-s", "mh", "-b", "mh-port,flag-3"],
      {
        kind: "add-service",
        svc: { proto: IPPROTO_TCP, addr: 0, port: 0, fwmark: 7 },
        opts: {
          sched: "mh",
          flags: SVC_F_ONEPACKET | SVC_F_SCHED2 | SVC_F_SCHED3,
          timeout: 0,
          netmask: 0xffffffff,
        },
      },
    ],
    [
      "-E sends the whole service",
      ["-E", "-t", "10.0.0.1:80", "-s", "rr"],
      { kind: "edit-service", svc: VIP, opts: { sched: "rr", flags: 0, timeout: 0, netmask: 0xffffffff } },
    ],
    ["-D", ["-D", "-t", "10.0.0.1:80"], { kind: "delete-service", svc: VIP }],
    ["-C", ["-C"], { kind: "clear" }],
    ["--clear", ["--clear"], { kind: "clear" }],
    ["-R", ["-R"], { kind: "restore" }],
    ["-S", ["-S"], { kind: "save", numeric: false }],
    ["-Sn", ["-Sn"], { kind: "save", numeric: true }],
    [
      "-a defaults: DR (-g), weight 1, the service port",
      ["-a", "-t", "10.0.0.1:80", "-r", "192.168.1.1"],
      {
        kind: "add-dest",
        svc: VIP,
        dest: {
          addr: ip("192.168.1.1"),
          port: 80,
          weight: 1,
          fwd: FwdMethod.ROUTE,
          uThreshold: 0,
          lThreshold: 0,
          tunType: 0,
          tunPort: 0,
        },
      },
    ],
    [
      "-a -m keeps the server port; -w -x -y",
      ["-a", "-t", "10.0.0.1:80", "-r", "192.168.1.1:8080", "-m", "-w", "3", "-x", "100", "-y", "50"],
      {
        kind: "add-dest",
        svc: VIP,
        dest: {
          addr: ip("192.168.1.1"),
          port: 8080,
          weight: 3,
          fwd: FwdMethod.MASQ,
          uThreshold: 100,
          lThreshold: 50,
          tunType: 0,
          tunPort: 0,
        },
      },
    ],
    [
      "-g forces the service port",
      ["-a", "-t", "10.0.0.1:80", "-r", "192.168.1.1:8080", "-g", "-w", "0"],
      {
        kind: "add-dest",
        svc: VIP,
        dest: {
          addr: ip("192.168.1.1"),
          port: 80,
          weight: 0,
          fwd: FwdMethod.ROUTE,
          uThreshold: 0,
          lThreshold: 0,
          tunType: 0,
          tunPort: 0,
        },
      },
    ],
    [
      "-i with --tun-type ipip",
      ["-a", "-t", "10.0.0.1:80", "-r", "192.168.1.1", "-i", "--tun-type", "ipip"],
      {
        kind: "add-dest",
        svc: VIP,
        dest: {
          addr: ip("192.168.1.1"),
          port: 80,
          weight: 1,
          fwd: FwdMethod.TUNNEL,
          uThreshold: 0,
          lThreshold: 0,
          tunType: 0,
          tunPort: 0,
        },
      },
    ],
    [
      "fwmark dests keep their port under -g",
      ["-a", "-f", "1", "-r", "192.168.1.1:8080"],
      {
        kind: "add-dest",
        svc: { proto: IPPROTO_TCP, addr: 0, port: 0, fwmark: 1 },
        dest: {
          addr: ip("192.168.1.1"),
          port: 8080,
          weight: 1,
          fwd: FwdMethod.ROUTE,
          uThreshold: 0,
          lThreshold: 0,
          tunType: 0,
          tunPort: 0,
        },
      },
    ],
    [
      "--fullnat (our extension)",
      [
        "--add-server",
        "--tcp-service",
        "10.0.0.1:80",
        "--real-server",
        "192.168.1.1:81",
        "--fullnat",
        "--weight=2",
      ],
      {
        kind: "add-dest",
        svc: VIP,
        dest: {
          addr: ip("192.168.1.1"),
          port: 81,
          weight: 2,
          fwd: FwdMethod.FULLNAT,
          uThreshold: 0,
          lThreshold: 0,
          tunType: 0,
          tunPort: 0,
        },
      },
    ],
    [
      "-r before -t still takes the service port",
      ["-a", "-r", "192.168.1.1", "-t", "10.0.0.1:80", "-m"],
      {
        kind: "add-dest",
        svc: VIP,
        dest: {
          addr: ip("192.168.1.1"),
          port: 80,
          weight: 1,
          fwd: FwdMethod.MASQ,
          uThreshold: 0,
          lThreshold: 0,
          tunType: 0,
          tunPort: 0,
        },
      },
    ],
    [
      "-e",
      ["-e", "-t", "10.0.0.1:80", "-r", "192.168.1.1:80", "-m", "-w", "5"],
      {
        kind: "edit-dest",
        svc: VIP,
        dest: {
          addr: ip("192.168.1.1"),
          port: 80,
          weight: 5,
          fwd: FwdMethod.MASQ,
          uThreshold: 0,
          lThreshold: 0,
          tunType: 0,
          tunPort: 0,
        },
      },
    ],
    [
      "-d without a port uses the service port",
      ["-d", "-t", "10.0.0.1:80", "-r", "192.168.1.1"],
      { kind: "delete-dest", svc: VIP, addr: ip("192.168.1.1"), port: 80 },
    ],
    ["-Z all", ["-Z"], { kind: "zero" }],
    ["-Z one service", ["-Z", "-t", "10.0.0.1:80"], { kind: "zero", svc: VIP }],
    ["--zero", ["--zero"], { kind: "zero" }],
    [
      "--set",
      ["--set", "900", "0", "60"],
      { kind: "set-timeout", timeouts: { tcp: 900, tcpfin: 0, udp: 60 } },
    ],
    [
      "--start-daemon master with options",
      [
        "--start-daemon",
        "master",
        "--mcast-interface",
        "eth1",
        "--syncid",
        "7",
        "--mcast-group",
        "224.0.0.82",
      ],
      {
        kind: "start-daemon",
        state: "master",
        daemon: { mcastIfn: "eth1", syncid: 7, mcastGroup: ip("224.0.0.82") },
      },
    ],
    [
      "--start-daemon backup defaults to eth0",
      ["--start-daemon", "backup"],
      { kind: "start-daemon", state: "backup", daemon: { mcastIfn: "eth0", syncid: 0 } },
    ],
    ["--stop-daemon", ["--stop-daemon", "master"], { kind: "stop-daemon", state: "master" }],
    ["-h", ["-h"], { kind: "help" }],
    ["--help", ["--help"], { kind: "help" }],
    ["-h ends parsing", ["-h", "--bogus"], { kind: "help" }],
    ["-v", ["-v"], { kind: "version" }],
    ["--version", ["--version"], { kind: "version" }],
  ];

  it.each(cases)("%s", (_name, argv, expected) => {
    expect(cmdOf(argv)).toEqual(expected);
  });
});

describe("refused command lines give ipvsadm's message and exit status", () => {
  const tryHelp = tryHelpMessage("lvsadm");
  const cases: [string[], string, number][] = [
    // the first option must be a command: the help hint, exit 255
    [["-n", "-L"], tryHelp, 255],
    [["foo"], tryHelp, 255],
    [["-k"], tryHelp, 255],
    [["--bogus"], tryHelp, 255],
    [["-t", "10.0.0.1:80", "-A"], tryHelp, 255],
    // popt's own errors: "<token>: <text>", exit 255
    [["-L", "-k"], "-k: unknown option", 255],
    [["-Lk"], "-Lk: unknown option", 255],
    [["-L", "--bogus"], "--bogus: unknown option", 255],
    [["-A", "-t"], "-t: missing argument", 255],
    [["-L", "--numeric=yes"], "--numeric=yes: option does not take an argument", 255],
    // a second command after the first
    [["-A", "-t", "10.0.0.1:80", "-E"], "invalid option `-E'", 2],
    [["-L", "-h"], "invalid option `-h'", 2],
    [["-L", "--start-daemon", "master"], "invalid option `master'", 2],
    // set_option(): once each
    [["-A", "-t", "10.0.0.1:80", "-t", "10.0.0.2:80"], "multiple 'service-address' options specified", 2],
    [["-A", "-t", "10.0.0.1:80", "-f", "1"], "multiple 'service-address' options specified", 2],
    [
      ["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-m", "-g"],
      "multiple 'forwarding-method' options specified",
      2,
    ],
    [
      ["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-m", "--fullnat"],
      "multiple 'forwarding-method' options specified",
      2,
    ],
    [["-Ln", "-n"], "multiple 'numeric' options specified", 2],
    // the command/option table
    [["-A"], "You need to supply the 'service-address' option for the 'add-service' command", 2],
    [
      ["-a", "-t", "10.0.0.1:80", "-m"],
      "You need to supply the 'real-server' option for the 'add-server' command",
      2,
    ],
    [
      ["-d", "-t", "10.0.0.1:80"],
      "You need to supply the 'real-server' option for the 'delete-server' command",
      2,
    ],
    [
      ["-A", "-t", "10.0.0.1:80", "-r", "10.1.1.1"],
      "Illegal 'real-server' option with the 'add-service' command",
      2,
    ],
    [
      ["-D", "-t", "10.0.0.1:80", "-s", "rr"],
      "Illegal 'scheduler' option with the 'delete-service' command",
      2,
    ],
    [["-A", "-t", "10.0.0.1:80", "-w", "2"], "Illegal 'weight' option with the 'add-service' command", 2],
    [
      ["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-p"],
      "Illegal 'persistent' option with the 'add-server' command",
      2,
    ],
    [
      ["-d", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-m"],
      "Illegal 'forwarding-method' option with the 'delete-server' command",
      2,
    ],
    [["-C", "-n"], "Illegal 'numeric' option with the 'flush' command", 2],
    [["-R", "-n"], "Illegal 'numeric' option with the 'restore' command", 2],
    [["-S", "-c"], "Illegal 'connection' option with the 'save' command", 2],
    [["-Z", "-n"], "Illegal 'numeric' option with the 'zero' command", 2],
    [["--set", "1", "2", "3", "-n"], "Illegal 'numeric' option with the 'set' command", 2],
    [["-L", "-s", "rr"], "Illegal 'scheduler' option with the 'list' command", 2],
    [["-A", "-t", "10.0.0.1:80", "--stats"], "Illegal 'stats' option with the 'add-service' command", 2],
    [
      ["-L", "-c", "-t", "10.0.0.1:80"],
      "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
      2,
    ],
    [
      ["-L", "--timeout", "--daemon"],
      "The option 'daemon' conflicts with the 'timeout' option in the 'list' command",
      2,
    ],
    [["-L", "-c", "--stats"], "options conflicts in the list command", 2],
    [["-L", "--timeout", "--rate"], "options conflicts in the list command", 2],
    [["-L", "--daemon", "--persistent-conn"], "options conflicts in the list command", 2],
    // service rules
    [["-A", "-t", "10.0.0.1"], "Zero port specified for non-persistent service", 2],
    [["-E", "-t", "10.0.0.1:0"], "Zero port specified for non-persistent service", 2],
    [["-A", "-t", "10.0.0.1:53", "-o"], "One-Packet Scheduling is only for UDP virtual services", 2],
    [["-A", "-t", "10.0.0.1:80", "-p", "0"], "invalid timeout value `0' specified", 2],
    [["-A", "-t", "10.0.0.1:80", "-p", "2678401"], "invalid timeout value `2678401' specified", 2],
    [["-A", "-t", "10.0.0.1:80", "-p", "abc"], "invalid timeout value `abc' specified", 2],
    [["-A", "-t", "10.0.0.1:80", "-p", "-M", "bogus"], "illegal virtual server persistent mask specified", 2],
    // addresses: numeric IPv4 only
    [["-A", "-t", "example.com:80"], "illegal virtual server address[:port] specified", 2],
    [["-A", "-t", "10.0.0.256:80"], "illegal virtual server address[:port] specified", 2],
    [["-A", "-t", "80"], "illegal virtual server address[:port] specified", 2],
    [["-A", "-t", "10.0.0.1:65536"], "illegal virtual server address[:port] specified", 2],
    [["-A", "-t", "10.0.0.1:"], "illegal virtual server address[:port] specified", 2],
    [["-A", "-t", "10.0.0.1:nosuchport"], "illegal virtual server address[:port] specified", 2],
    [["-A", "-u", "10.0.0.1:http"], "illegal virtual server address[:port] specified", 2], // http is tcp-only here
    [["-A", "-t", "[2001:db8::1]:80"], `${IPV6_REFUSED} (\`[2001:db8::1]:80')`, 2],
    [["-A", "-t", "2001:db8::1"], `${IPV6_REFUSED} (\`2001:db8::1')`, 2],
    [["-a", "-t", "10.0.0.1:80", "-r", "::1"], `${IPV6_REFUSED} (\`::1')`, 2],
    [["-A", "-f", "1", "-6"], IPV6_REFUSED, 2],
    [["-A", "-t", "10.0.0.1:80", "-6"], "-6 used before -f", 2],
    [["-A", "-f", "0"], "invalid fwmark value `0' specified", 2],
    [["-A", "-f", "abc"], "invalid fwmark value `abc' specified", 2],
    [["-A", "-f", "4294967296"], "invalid fwmark value `4294967296' specified", 2],
    [["-a", "-t", "10.0.0.1:80", "-r", "server1"], "illegal real server address[:port] specified", 2],
    // unsupported ipvsadm features, refused clearly
    [
      ["-A", "--sctp-service", "10.0.0.1:80"],
      "SCTP services are not supported: lvs-ts handles TCP, UDP and fwmark services",
      2,
    ],
    [
      ["-A", "-t", "10.0.0.1:80", "-p", "--pe", "sip"],
      "persistence engines are not supported (--pe sip): lvs-ts has none yet",
      2,
    ],
    // dest values
    [["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-w", "65536"], "illegal weight specified", 2],
    [["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-w", "-1"], "illegal weight specified", 2],
    [["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-w", "1x"], "illegal weight specified", 2],
    [["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-x", "abc"], "illegal u_threshold specified", 2],
    [["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-y", "-1"], "illegal l_threshold specified", 2],
    [
      ["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-m", "--tun-type", "ipip"],
      "Tunnel options conflict with forward method",
      2,
    ],
    [
      ["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-i", "--tun-type", "gue"],
      "tunnel type 'gue' is not implemented yet (only ipip is available)",
      2,
    ],
    [
      ["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-i", "--tun-type", "gre"],
      "tunnel type 'gre' is not implemented yet (only ipip is available)",
      2,
    ],
    [
      ["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-i", "--tun-type", "vxlan"],
      "illegal tunnel type specified",
      2,
    ],
    [
      ["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-i", "--tun-port", "0"],
      "illegal tunnel port specified",
      2,
    ],
    [
      ["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-i", "--tun-port", "6080"],
      "Illegal 'tun-port' option with the 'ipip' tunnel type",
      2,
    ],
    [
      ["-a", "-t", "10.0.0.1:80", "-r", "10.1.1.1", "-i", "--tun-csum"],
      "Illegal 'tun-csum' option with the 'ipip' tunnel type",
      2,
    ],
    // -b
    [["-A", "-t", "10.0.0.1:80", "-s", "rr", "-b", "sh-port"], "incompatible scheduler flag `sh-port'", 2],
    [["-A", "-f", "1", "-b", "sh-fallback"], "incompatible scheduler flag `sh-fallback'", 2], // no -s: wlc
    [["-A", "-f", "1", "-s", "sh", "-b", "mh-port"], "incompatible scheduler flag `mh-port'", 2],
    [["-A", "-f", "1", "-s", "sh", "-b", "bogus"], "invalid scheduler flag `bogus'", 2],
    // --set and stray words
    [["--set", "900"], "--set option requires 3 timeout values", 2],
    [["--set", "900", "x", "300"], "invalid timeout value `x' specified", 2],
    [["--set", "900", "120", "2678401"], "invalid timeout value `2678401' specified", 2],
    [["--set", "1", "2", "3", "4"], "unexpected argument 4", 2],
    [["-L", "extra"], "unexpected argument extra", 2],
    [["-A", "-t", "10.0.0.1:80", "--", "-s"], "unexpected argument -s", 2],
    // daemon
    [["--start-daemon", "primary"], "illegal start-daemon parameter specified", 2],
    [["--stop-daemon", "x"], "illegal start_daemon specified", 2],
    [["--start-daemon", "master", "--syncid", "256"], "illegal syncid specified", 2],
    [["--start-daemon", "master", "--mcast-group", "10.0.0.1"], "invalid IPv4 mcast-group `10.0.0.1'", 2],
    [["--start-daemon", "master", "--mcast-port", "0"], "illegal mcast-port specified", 2],
    [["--start-daemon", "master", "--mcast-ttl", "256"], "illegal mcast-ttl specified", 2],
    [["--start-daemon", "master", "--sync-maxlen", "65508"], "illegal sync-maxlen specified", 2],
    [
      ["--stop-daemon", "master", "--mcast-interface", "eth0"],
      "Illegal 'mcast-interface' option with the 'stop-daemon' command",
      2,
    ],
  ];

  it.each(cases)("%j", (argv, message, code) => {
    const r = parse(argv);
    expect(r).toEqual({
      ok: false,
      error: {
        message,
        code,
        fatal:
          !message.includes(": unknown option") &&
          !message.includes(": missing argument") &&
          !message.includes("does not take"),
      },
    });
  });

  it("uses the program name in the help hint", () => {
    const r = parseArgs(["-x"], { prog: "ipvsadm", services: TEST_SERVICES });
    expect(r).toEqual({
      ok: false,
      error: {
        message: "Try `ipvsadm -h' or 'ipvsadm --help' for more information.",
        code: 255,
        fatal: true,
      },
    });
  });

  it("refuses -R inside a restore with the help hint, ending the restore", () => {
    expect(parse(["-R"], true)).toEqual({
      ok: false,
      error: { message: tryHelpMessage("lvsadm"), code: 255, fatal: true },
    });
  });

  it("marks popt's errors as not fatal (a restore goes on) and fail() as fatal", () => {
    const popt = parse(["-L", "--bogus"]);
    const failed = parse(["-A"]);
    expect(popt.ok || popt.error.fatal).toBe(false);
    expect(failed.ok || failed.error.fatal).toBe(true);
  });
});

describe("the compatibility table", () => {
  it("has one column per option and one row per command", () => {
    expect(COMMANDS_V_OPTIONS).toHaveLength(14);
    for (const row of COMMANDS_V_OPTIONS) expect(row).toHaveLength(OPT_NAMES.length);
    expect(OPT_NAMES).toHaveLength(34);
  });

  it("allows exactly the options ipvsadm allows for -A (scheduler, persistent, netmask, ops, pe, sched-flags)", () => {
    const optional = [...(COMMANDS_V_OPTIONS[0] ?? "")].flatMap((c, j) => (c === " " ? [OPT_NAMES[j]] : []));
    expect(optional).toEqual(["scheduler", "persistent", "netmask", "ops", "pe", "sched-flags"]);
  });

  it("allows forwarding, weight, thresholds and tunnel options for -a", () => {
    const optional = [...(COMMANDS_V_OPTIONS[5] ?? "")].flatMap((c, j) => (c === " " ? [OPT_NAMES[j]] : []));
    expect(optional).toEqual([
      "forwarding-method",
      "weight",
      "u-threshold",
      "l-threshold",
      "tun-type",
      "tun-port",
      "tun-nocsum",
      "tun-csum",
      "tun-remcsum",
    ]);
  });
});

describe("address helpers", () => {
  it("inet_aton accepts its shorthand forms and bases", () => {
    expect(inetAton("10.0.0.1")).toBe(ip("10.0.0.1"));
    expect(inetAton("10.1")).toBe(ip("10.0.0.1"));
    expect(inetAton("10.1.2")).toBe(ip("10.1.0.2"));
    expect(inetAton("1.2.65535")).toBe(ip("1.2.255.255"));
    expect(inetAton("0x0a000001")).toBe(ip("10.0.0.1"));
    expect(inetAton("010.0.0.1")).toBe(ip("8.0.0.1"));
    expect(inetAton("255.255.255.255")).toBe(0xffffffff);
  });

  it("inet_aton refuses what inet_aton refuses", () => {
    for (const s of [
      "",
      "1..2",
      "1.2.3.4.5",
      "1.2.3.256",
      "08.0.0.1",
      "1.2.3.-1",
      "a.b.c.d",
      "1.2.3.4 ",
      "4294967296",
    ]) {
      expect(inetAton(s), s).toBeUndefined();
    }
  });

  it("inet_aton(ipToString(a)) round-trips every address", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (a) => inetAton(ipToString(a)) === a));
  });

  it("string_to_number follows strtol: blanks and sign allowed, nothing after", () => {
    expect(stringToNumber(" 42", 0, 100)).toBe(42);
    expect(stringToNumber("+7", 0, 100)).toBe(7);
    expect(stringToNumber("-0", 0, 100)).toBe(0);
    expect(stringToNumber("42 ", 0, 100)).toBe(-1);
    expect(stringToNumber("", 0, 100)).toBe(-1);
    expect(stringToNumber("101", 0, 100)).toBe(-1);
  });

  it("services(5): first entry wins for a port, aliases resolve, per protocol", () => {
    const db = parseServices("www 80/tcp\nhttp 80/tcp web # comment\ndomain 53/udp\n");
    expect(db.nameOf(80, IPPROTO_TCP)).toBe("www");
    expect(db.portOf("web", IPPROTO_TCP)).toBe(80);
    expect(db.portOf("domain", IPPROTO_TCP)).toBeUndefined();
    expect(db.portOf("domain", IPPROTO_UDP)).toBe(53);
  });
});

describe("properties", () => {
  it("never throws, whatever the words", () => {
    const word = fc.oneof(
      fc.constantFrom(
        "-A",
        "-a",
        "-L",
        "-n",
        "-t",
        "-r",
        "-p",
        "-m",
        "-w",
        "--set",
        "-R",
        "10.0.0.1:80",
        "-Lnc",
        "--",
      ),
      fc.string({ maxLength: 12 }),
    );
    fc.assert(
      fc.property(fc.array(word, { maxLength: 10 }), (argv) => {
        const r = parse(argv);
        if (!r.ok) expect([2, 255]).toContain(r.error.code);
      }),
      { numRuns: 2000 },
    );
  });

  it("any accepted -a gives a weight in 0..65535 and a dest port equal to the service port unless NAT/FULLNAT/fwmark", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.integer({ min: 1, max: 65535 }),
        fc.integer({ min: 1, max: 65535 }),
        fc.constantFrom("-m", "-g", "-i", "--fullnat"),
        fc.integer({ min: 0, max: 65535 }),
        (a, vport, dport, fwd, w) => {
          const cmd = cmdOf([
            "-a",
            "-t",
            `10.0.0.1:${vport}`,
            "-r",
            `${ipToString(a)}:${dport}`,
            fwd,
            "-w",
            String(w),
          ]);
          if (cmd.kind !== "add-dest") return false;
          const keepsPort = fwd === "-m" || fwd === "--fullnat";
          return (
            cmd.dest.weight === w && cmd.dest.addr === a && cmd.dest.port === (keepsPort ? dport : vport)
          );
        },
      ),
    );
  });
});
