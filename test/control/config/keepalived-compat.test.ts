/**
 * keepalived.conf as keepalived 2.2 reads it (issue 11, section 2): nb_get_retry, unknown
 * blocks and bad values warned and read past, duplicate virtual servers, the include variants,
 * `$` parameters, `@` conditions and `~SEQ`, the UDP default protocol, virtual_server_group
 * entries and fwmark services, `lvsd --config-test` and `--config-id`.
 *
 * Where keepalived's verdict matters the same file is given to the real `keepalived -t`
 * (Debian's keepalived 2.2.7) and its verdict is compared with lvsd's: accept (keepalived exits
 * 0), warn (it reports configuration errors and would still run: exit 5) or refuse (it cannot
 * run the file: exit 4). Without keepalived those comparisons skip, naming the package.
 */

import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { EngineControl } from "../../../src/control/adapter.js";
import { run } from "../../../src/control/commands.js";
import { checkConfigFile, checkConfigText, parseConfigText } from "../../../src/control/config/parser.js";
import { decomment, MAX_EXPANDED_LINES } from "../../../src/control/config/preprocess.js";
import type { CheckerConfig } from "../../../src/control/config/types.js";
import { HealthManager } from "../../../src/control/health/manager.js";
import { parseServices } from "../../../src/control/netdb.js";
import { Engine } from "../../../src/datapath/engine.js";
import { u32ToIp } from "../../../src/lib/addr.js";
import { IPPROTO_TCP, IPPROTO_UDP } from "../../../src/lib/proto.js";
import { main as lvsdMain } from "../../../src/tools/cli/lvsd.js";
import { need, skipWithout } from "../../support/tools.js";

type Verdict = "accept" | "warn" | "refuse";

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "kacompat-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(text: string, name = `t${n++}.conf`): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** lvsd's verdict on a file. */
function lvsdVerdict(
  path: string,
  configId = "lvs1",
): { verdict: Verdict; warnings: string[]; errors: string[] } {
  const r = checkConfigFile(path, { configId });
  const errors = r.errors.map((e) => e.message);
  return {
    verdict: errors.length > 0 ? "refuse" : r.warnings.length > 0 ? "warn" : "accept",
    warnings: r.warnings,
    errors,
  };
}

/** keepalived -t's verdict on a file (keepalived's config test exit codes: 0, 4 cannot run, 5 errors). */
function keepalivedVerdict(path: string, configId = "lvs1"): { verdict: Verdict; out: string } {
  const r = spawnSync("keepalived", ["-t", "-f", path, "-i", configId], {
    encoding: "utf8",
    timeout: 20_000,
  });
  const out = `${r.stdout ?? ""}${r.stderr ?? ""}`;
  if (r.status === 0) return { verdict: "accept", out };
  if (r.status === 5) return { verdict: "warn", out };
  return { verdict: "refuse", out };
}

/** A virtual server keepalived -t accepts without a word (scheduler, method and protocol set). */
const VS = (body: string, head = "10.0.0.1 80") => `virtual_server ${head} {
  lb_algo rr
  lb_kind NAT
  protocol TCP
${body}
}
`;

const RS = (body: string, addr = "10.0.1.1 80") => `  real_server ${addr} {
${body}
  }
`;

const checkersOf = (text: string): CheckerConfig[] =>
  parseConfigText(text, "c.conf", dir, { configId: "lvs1" }).virtualServers.flatMap((v) =>
    v.realServers.flatMap((r) => r.checkers),
  );

/**
 * The comparison table: the file, what keepalived -t says, what lvsd says. Rows where the two
 * differ are the documented differences (docs/keepalived.md).
 */
const COMPARE: { name: string; text: () => string; ka: Verdict; lvsd: Verdict; warning?: RegExp }[] = [
  {
    name: "a clean file",
    text: () => VS(RS("    weight 2\n    TCP_CHECK {\n      retry 2\n    }")),
    ka: "accept",
    lvsd: "accept",
  },
  {
    name: "nb_get_retry in TCP_CHECK",
    text: () => VS(RS("    TCP_CHECK {\n      nb_get_retry 3\n    }")),
    ka: "warn",
    lvsd: "warn",
    warning: /:7: unknown keyword 'nb_get_retry' in TCP_CHECK \(ignored/,
  },
  {
    name: "nb_get_retry in HTTP_GET (deprecated, still used)",
    text: () => VS(RS("    HTTP_GET {\n      url {\n        path /\n      }\n      nb_get_retry 3\n    }")),
    ka: "warn",
    lvsd: "warn",
    warning: /:10: nb_get_retry is deprecated: use retry/,
  },
  {
    name: "a misspelled checker block",
    text: () => VS(RS("    TCP_CHEK {\n      connect_timeout 3\n    }")),
    ka: "warn",
    lvsd: "warn",
    warning:
      /:6: unknown keyword 'TCP_CHEK' in real_server \(block ignored\): real_server 10\.0\.1\.1:80 is held down/,
  },
  {
    name: "a misspelled real_server block",
    text: () => VS(`  real_sever 10.0.1.2 80 {\n    weight 1\n  }\n${RS("")}`),
    ka: "warn",
    lvsd: "warn",
    warning: /:5: unknown keyword 'real_sever' in virtual_server \(block ignored\)/,
  },
  {
    name: "an unknown lb_algo",
    text: () => VS(RS("").replace("", "  lb_algo fastest\n")),
    ka: "warn",
    lvsd: "warn",
    warning: /:5: lb_algo fastest: no such scheduler \(ignored, rr stays/,
  },
  {
    name: "a weight above 2^31-1",
    text: () => VS(RS("    weight 2147483648")),
    ka: "warn",
    lvsd: "warn",
    warning: /:6: weight '2147483648' is outside 0\.\.2147483647 \(ignored, weight stays 1\)/,
  },
  {
    // keepalived takes it; lvs-ts's table holds 0..65535: lowered, and said
    name: "a weight of 70000",
    text: () => VS(RS("    weight 70000")),
    ka: "accept",
    lvsd: "warn",
    warning: /:6: weight 70000 is above 65535, the largest lvs-ts holds: using 65535/,
  },
  {
    // keepalived says nothing (the kernel refuses the second add at run time)
    name: "a duplicate virtual_server",
    text: () => VS(RS("")) + VS(RS("", "10.0.1.2 80")),
    ka: "accept",
    lvsd: "warn",
    warning:
      /:10: virtual_server TCP 10\.0\.0\.1:80 is declared twice \(first at .*:1\): this block is ignored/,
  },
  {
    name: "a virtual_server without protocol",
    text: () => VS(RS("")).replace("  protocol TCP\n", ""),
    ka: "warn",
    lvsd: "warn",
    warning: /:1: virtual_server 10\.0\.0\.1 80: no protocol set, defaulting to UDP \(as keepalived\)/,
  },
  {
    name: "an unknown protocol",
    text: () => VS(RS("")).replace("  protocol TCP\n", "  protocol ICMP\n"),
    ka: "warn",
    lvsd: "warn",
    warning: /:4: protocol: unknown protocol 'ICMP' \(ignored\)/,
  },
  {
    name: "virtual_server fwmark",
    text: () => VS(RS(""), "fwmark 5").replace("  protocol TCP\n", ""),
    ka: "accept",
    lvsd: "accept",
  },
  {
    name: "virtual_server fwmark with a protocol",
    text: () => VS(RS(""), "fwmark 5"),
    ka: "warn",
    lvsd: "warn",
    warning: /:1: virtual_server fwmark 5: protocol specified for fwmark \(ignored, as keepalived\)/,
  },
  {
    name: "a virtual_server_group with port-less, range, prefix and fwmark entries",
    text: () =>
      `virtual_server_group G {\n  10.0.0.1 80\n  10.0.0.2\n  10.0.0.10-12 80\n  10.0.1.0/30 443\n  fwmark 7\n}\n${VS(
        `  persistence_timeout 30\n${RS("")}`,
        "group G",
      )}`,
    ka: "accept",
    lvsd: "accept",
  },
  {
    name: "virtual_server_group entries keepalived skips",
    text: () =>
      `virtual_server_group G {\n  10.0.0.1 80\n  10.0.0.5-5 80\n  10.0.0.1/24 80\n}\n${VS(RS(""), "group G")}`,
    ka: "warn",
    lvsd: "warn",
    warning: /:3: virtual_server_group G: range 10\.0\.0\.5-5 does not end after it starts \(entry skipped\)/,
  },
  {
    name: "SMTP_CHECK, DNS_CHECK and FILE_CHECK",
    text: () =>
      `track_file up {\n  file ${dir}/up.flag\n}\n${VS(
        RS(
          "    SMTP_CHECK {\n      helo_name lvs.example\n    }\n    DNS_CHECK {\n      type A\n      name www.example.com\n    }\n    FILE_CHECK {\n      track_file up\n    }",
        ),
      )}`,
    ka: "accept",
    lvsd: "accept",
  },
  {
    name: "$ parameters, @ conditions and ~SEQ",
    text: () =>
      `$PORT=80\n$RS=real_server 10.0.1.1 \${PORT} { \\\n  weight 2 \\\n}\n@lvs1 virtual_server 10.0.0.1 $PORT {\n@^lvs1 virtual_server 10.0.0.2 $PORT {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n  $RS\n  ~SEQ(N, 2, 4) real_server 10.0.2.$N 80 { }\n}\n`,
    ka: "accept",
    lvsd: "accept",
  },
  {
    // plain include: keepalived notes it and reads on (exit 0); lvsd warns
    name: "include of a missing file",
    text: () => `include ${dir}/nothere.conf\n${VS(RS(""))}`,
    ka: "accept",
    lvsd: "warn",
    warning: /:1: include \S+nothere\.conf: no such file \(nothing included\)/,
  },
  {
    name: "includer of a missing file",
    text: () => `includer ${dir}/nothere.conf\n${VS(RS(""))}`,
    ka: "accept",
    lvsd: "warn",
  },
  {
    name: "includem of a missing file",
    text: () => `includem ${dir}/nothere.conf\n${VS(RS(""))}`,
    ka: "refuse",
    lvsd: "refuse",
  },
  {
    name: "includea of a missing file",
    text: () => `includea ${dir}/nothere.conf\n${VS(RS(""))}`,
    ka: "refuse",
    lvsd: "refuse",
  },
  {
    name: "includew of a pattern that matches nothing",
    text: () => `includew ${dir}/*.nomatch\n${VS(RS(""))}`,
    ka: "refuse",
    lvsd: "refuse",
  },
  {
    name: "includef (no such variant: an unknown keyword)",
    text: () => `includef ${dir}/x.conf\n${VS(RS(""))}`,
    ka: "warn",
    lvsd: "warn",
    warning: /:1: unknown keyword 'includef' \(ignored\)/,
  },
];

describe("lvsd's verdicts (and warnings) on keepalived's divergence cases", () => {
  it.each(COMPARE)("$name: lvsd $lvsd", (c) => {
    const v = lvsdVerdict(file(c.text()));
    expect({ verdict: v.verdict, errors: v.errors }).toMatchObject({ verdict: c.lvsd });
    if (c.warning) expect(v.warnings.join("\n")).toMatch(c.warning);
  });
});

describe("keepalived -t agrees (where the table says it does)", () => {
  it.for(COMPARE)("$name: keepalived $ka", (c, ctx) => {
    skipWithout(ctx, "keepalived");
    const p = file(c.text());
    const ka = keepalivedVerdict(p);
    expect({ verdict: ka.verdict, out: ka.out }).toMatchObject({ verdict: c.ka });
    expect(lvsdVerdict(p).verdict).toBe(c.lvsd);
  });
  it("names the package when keepalived is missing", () => {
    // the skip message of the tests above
    expect(need("keepalived") === "" || need("keepalived").includes("Debian package keepalived")).toBe(true);
  });
});

describe("1. nb_get_retry", () => {
  it("TCP_CHECK keeps retry at its default (keepalived 2.x ignores nb_get_retry there)", () => {
    const [c] = checkersOf(VS(RS("    TCP_CHECK {\n      nb_get_retry 7\n    }")));
    expect(c?.timing.retry).toBe(1);
  });
  it("HTTP_GET and SSL_GET still honour it; MISC_CHECK, SMTP_CHECK, DNS_CHECK do not", () => {
    const cs = checkersOf(
      VS(
        RS(
          '    HTTP_GET {\n      url {\n        path /\n      }\n      nb_get_retry 7\n    }\n    SSL_GET {\n      url {\n        path /\n      }\n      nb_get_retry 6\n    }\n    MISC_CHECK {\n      misc_path "/bin/true"\n      nb_get_retry 5\n    }\n    SMTP_CHECK {\n      nb_get_retry 5\n    }\n    DNS_CHECK {\n      nb_get_retry 5\n    }',
        ),
      ),
    );
    expect(cs.map((c) => [c.type, c.timing.retry])).toEqual([
      ["HTTP_GET", 7],
      ["SSL_GET", 6],
      ["MISC_CHECK", 0],
      ["SMTP_CHECK", 1],
      ["DNS_CHECK", 3],
    ]);
  });
  it("at real_server level it is an unknown keyword, not an inherited retry", () => {
    const cfg = parseConfigText(VS(RS("    nb_get_retry 4\n    TCP_CHECK {\n    }")), "r.conf");
    expect(cfg.virtualServers[0]?.realServers[0]?.checkers[0]?.timing.retry).toBe(1);
    expect(cfg.warnings).toContain("r.conf:6: unknown keyword 'nb_get_retry' in real_server (ignored)");
  });
});

describe("2. read past what keepalived reads past", () => {
  it("the rest of the file applies: skipped blocks, the default scheduler, the clamped weight", () => {
    const cfg = parseConfigText(
      `${VS(`  lb_algo fastest\n  real_sever 10.0.1.9 80 {\n    weight 4\n  }\n${RS("    weight 70000")}`).replace("  lb_algo rr\n", "")}${VS(RS("", "10.0.1.5 80"))}`,
      "k.conf",
    );
    expect(cfg.virtualServers).toHaveLength(1);
    const v = cfg.virtualServers[0];
    expect(v?.opts.sched).toBe("wlc");
    expect(v?.realServers.map((r) => `${u32ToIp(r.addr)}:${r.port} w${r.weight}`)).toEqual([
      "10.0.1.1:80 w65535",
    ]);
  });
  it("a real server with a checker lvsd cannot run is held down, never up", async () => {
    const engine = new EngineControl(new Engine({ maxConns: 64 }));
    const log: string[] = [];
    const m = new HealthManager(engine.table, { log: (s) => log.push(s) });
    const p = file(
      VS(
        `${RS("    TCP_CHEK {\n    }")}${RS("    BFD_CHECK {\n      name b1\n    }", "10.0.1.2 80")}${RS("", "10.0.1.3 80")}`,
      ),
    );
    expect(m.loadFile(p).ok).toBe(true);
    m.start();
    await new Promise((r) => setTimeout(r, 50));
    const listed = run(["-Sn"], engine, "", { services: parseServices("") }).stdout;
    m.stop();
    // only the server with no checker at all is in the table
    expect(listed).toBe("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.3:80 -m -w 1\n");
    expect(log.join("\n")).toMatch(/10\.0\.1\.1:80 is held down/);
    expect(log.join("\n")).toMatch(
      /BFD_CHECK is not supported by lvsd \(block ignored\): real_server 10\.0\.1\.2:80 is held down/,
    );
  });
});

describe("3. include and its variants", () => {
  beforeAll(() => {
    mkdirSync(join(dir, "inc"), { recursive: true });
    writeFileSync(join(dir, "inc", "a.conf"), VS(RS(""), "10.0.5.1 80"));
    writeFileSync(join(dir, "inc", "x.conf"), VS(RS(""), "10.0.5.2 80"));
    chmodSync(join(dir, "inc", "x.conf"), 0o755);
  });
  const load = (line: string) => checkConfigText(`${line}\n`, "i.conf", dir, { configId: "lvs1" });
  it("a missing file is a warning for include and includer, an error for includem, includew, includea", () => {
    for (const kw of ["include", "includer"]) {
      const r = load(`${kw} inc/none.conf`);
      expect(r.errors).toEqual([]);
      expect(r.warnings).toEqual([`i.conf:1: ${kw} inc/none.conf: no such file (nothing included)`]);
    }
    for (const kw of ["includem", "includew", "includea"]) {
      expect(load(`${kw} inc/none.conf`).errors.map((e) => e.message)).toEqual([
        `i.conf:1: ${kw} inc/none.conf: no such file (nothing included)`,
      ]);
    }
    expect(load("includeb inc/none.conf").errors).toEqual([]);
  });
  it("a pattern matching nothing is an error only for includew and includea", () => {
    expect(load("includem inc/*.none").errors).toEqual([]);
    expect(load("includew inc/*.none").errors.map((e) => e.message)).toEqual([
      "i.conf:1: includew inc/*.none: no file matches (nothing included)",
    ]);
  });
  it("a brace alternative that is missing: includeb and includea refuse it, include reads the rest", () => {
    const plain = load("include inc/{a,b}.conf");
    expect(plain.config?.virtualServers.map((v) => v.name)).toEqual(["TCP 10.0.5.1:80"]);
    expect(plain.warnings[0]).toMatch(/some files are missing: .*inc\/b\.conf/);
    expect(load("includeb inc/{a,b}.conf").errors[0]?.message).toMatch(
      /^i\.conf:1: includeb inc\/\{a,b\}\.conf: some files are missing/,
    );
  });
  it("an executable or a directory is skipped: a warning for include, an error for includer", () => {
    const r = load("include inc/x.conf");
    expect(r.config?.virtualServers).toEqual([]);
    expect(r.warnings[0]).toMatch(/x\.conf is not a regular non-executable file \(skipped\)/);
    expect(load("includer inc/x.conf").errors[0]?.message).toMatch(/not a regular non-executable file/);
    expect(load("includer inc").errors[0]?.message).toMatch(/is a directory/);
  });
  it("every error is reported, and the load still fails (lvsd --config-test lists them)", () => {
    const r = load("includea inc/none1.conf\nincludea inc/none2.conf\nfrob");
    expect(r.errors.map((e) => e.line)).toEqual([1, 2]);
    expect(r.warnings).toEqual(["i.conf:3: unknown keyword 'frob' (ignored)"]);
    expect(r.config).toBeUndefined();
  });
});

describe("4. parameters, conditions and sequences", () => {
  const vsOf = (text: string, configId = "lvs1") =>
    parseConfigText(text, "p.conf", dir, { configId }).virtualServers.map(
      (v) => `${v.name}: ${v.realServers.map((r) => `${u32ToIp(r.addr)}:${r.port} w${r.weight}`).join(" ")}`,
    );
  const TEXT = `$PORT=80
$W=3
$RS=real_server 10.0.1.1 \${PORT} { \\
  weight $W \\
}
@lvs1 virtual_server 10.0.0.1 $PORT {
@^lvs1 virtual_server 10.0.0.2 $PORT {
  lb_algo rr
  protocol TCP
  $RS
  ~SEQ(N, 2, 4) real_server 10.0.2.$N 80 { }
  ~SEQx(H, 0x10, 0x10, 0x30) real_server 10.0.3.1 \${H}0 { }
}
`;
  it("$NAME, $\u007bNAME}, multi-line definitions, @ID and ~SEQ expand as keepalived expands them", () => {
    expect(vsOf(TEXT)).toEqual([
      "TCP 10.0.0.1:80: 10.0.1.1:80 w3 10.0.2.2:80 w1 10.0.2.3:80 w1 10.0.2.4:80 w1 10.0.3.1:100 w1 10.0.3.1:200 w1 10.0.3.1:300 w1",
    ]);
  });
  it("another config id takes the @^ line", () => {
    expect(vsOf(TEXT, "lvs2")[0]).toMatch(/^TCP 10\.0\.0\.2:80: /);
  });
  it("~SEQ with one value counts from 1; nested sequences; undefined names stay", () => {
    const t = VS(`  ~SEQ(A, 2) ~SEQ(B, 1, 2) real_server 10.0.\${A}.\${B} 80 { }`);
    expect(vsOf(t)).toEqual(["TCP 10.0.0.1:80: 10.0.1.1:80 w1 10.0.1.2:80 w1 10.0.2.1:80 w1 10.0.2.2:80 w1"]);
    const r = checkConfigText(VS("  $NOPE 1"), "u.conf");
    expect(r.warnings).toEqual(["u.conf:5: unknown keyword '$NOPE' in virtual_server (ignored)"]);
  });
  it("a configuration that expands without end (nested ~SEQ) is an error, found quickly", () => {
    const t = VS(`  ~SEQ(A, 1000000) ~SEQ(B, 1000000) real_server 10.0.1.1 80 { }`);
    const started = Date.now();
    const r = checkConfigText(t, "big.conf");
    expect(r.errors.map((e) => e.message)).toEqual([
      `big.conf:5: the configuration expands to more than ${MAX_EXPANDED_LINES} lines`,
    ]);
    expect(Date.now() - started).toBeLessThan(60_000); // a bound, not a timing: it ends
  });
  it("comments go before definitions are read; \\# is a literal #", () => {
    expect(decomment('  a "b # c" d # e')).toBe('a "b # c" d');
    expect(decomment("x \\#y ! z")).toBe("x #y");
    const cfg = parseConfigText(`$N=2 # two\n${VS("  real_server 10.0.1.$N 80 {\n  }")}`, "d.conf");
    expect(cfg.virtualServers[0]?.realServers.map((r) => u32ToIp(r.addr))).toEqual(["10.0.1.2"]);
  });
});

describe("5. protocol", () => {
  it("no protocol line makes a UDP service (keepalived's default), warned", () => {
    const cfg = parseConfigText(
      "virtual_server 10.0.0.1 53 {\n  real_server 10.0.1.1 53 {\n  }\n}\n",
      "u.conf",
    );
    expect(cfg.virtualServers[0]?.keys).toEqual([{ proto: IPPROTO_UDP, addr: 0x0a000001, port: 53 }]);
    expect(cfg.warnings).toEqual([
      "u.conf:1: virtual_server 10.0.0.1 53: no protocol set, defaulting to UDP (as keepalived)",
    ]);
    expect(parseConfigText(VS(RS("")), "t.conf").virtualServers[0]?.keys[0]?.proto).toBe(IPPROTO_TCP);
  });
});

describe("6. virtual_server_group entries and fwmark services", () => {
  it("port-less entries are port 0, ranges and prefixes expand, fwmark entries are -f services", () => {
    const text = `virtual_server_group G {\n  10.0.0.1 80\n  10.0.0.2\n  10.0.0.10-12 80\n  10.0.1.0/31 443\n  fwmark 7\n}\n${VS(
      `  persistence_timeout 30\n${RS("")}`,
      "group G",
    )}`;
    const v = parseConfigText(text, "g.conf").virtualServers[0];
    expect(v?.keys.map((k) => (k.fwmark ? `fwm ${k.fwmark}` : `${u32ToIp(k.addr)}:${k.port}`))).toEqual([
      "10.0.0.1:80",
      "10.0.0.2:0",
      "10.0.0.10:80",
      "10.0.0.11:80",
      "10.0.0.12:80",
      "10.0.1.0:443",
      "10.0.1.1:443",
      "fwm 7",
    ]);
  });
  it("virtual_server fwmark N loads, and lvsadm -Ln lists the FWM service", () => {
    const engine = new EngineControl(new Engine({ maxConns: 64 }));
    const m = new HealthManager(engine.table, { log: () => {} });
    const p = file(
      VS(`  persistence_timeout 60\n${RS("", "10.0.1.1")}${RS("", "10.0.1.2")}`, "fwmark 666").replace(
        "  protocol TCP\n",
        "",
      ),
    );
    const r = m.loadFile(p);
    expect(r).toMatchObject({ ok: true, warnings: [] });
    const ln = run(["-Ln"], engine, "", {}).stdout;
    expect(ln).toMatch(/^FWM {2}666 rr persistent 60\n {2}-> 10\.0\.1\.1:0 +Masq +1 /m);
    expect(ln).toMatch(/-> 10\.0\.1\.2:0 +Masq +1 /);
    // a reload keeps it (fwmark services have their own identity)
    expect(m.reload().ok).toBe(true);
    expect(run(["-Ln"], engine, "", {}).stdout).toBe(ln);
  });
});

describe("lvsd --config-test and --config-id", () => {
  async function lvsd(args: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = "";
    let err = "";
    const o = vi.spyOn(process.stdout, "write").mockImplementation((s) => {
      out += String(s);
      return true;
    });
    const e = vi.spyOn(process.stderr, "write").mockImplementation((s) => {
      err += String(s);
      return true;
    });
    const before = process.exitCode;
    process.exitCode = 0;
    try {
      await lvsdMain(args);
      return { code: Number(process.exitCode ?? 0), out, err };
    } finally {
      o.mockRestore();
      e.mockRestore();
      process.exitCode = before;
    }
  }
  it("prints every warning with file:line and exits 0; starts nothing", async () => {
    const p = file(VS(RS("    weight 70000\n    TCP_CHECK {\n      nb_get_retry 2\n    }")));
    const r = await lvsd(["--config", p, "--config-test"]);
    expect(r.code).toBe(0);
    expect(r.err).toBe(
      [
        `warning: ${p}:6: weight 70000 is above 65535, the largest lvs-ts holds: using 65535`,
        `warning: ${p}:8: unknown keyword 'nb_get_retry' in TCP_CHECK (ignored, as keepalived 2.x does: only HTTP_GET and SSL_GET take it; use retry)`,
        "",
      ].join("\n"),
    );
    expect(r.out).toBe(`${p}: 1 virtual servers, 1 real servers, 0 vrrp instances; 2 warnings\n`);
  });
  it("prints every error and exits 1", async () => {
    const p = file(`includea ${dir}/none-a.conf\nincludew ${dir}/*.none\n${VS(RS("    delay_loop x"))}`);
    const r = await lvsd(["--config-test", "--config", p]);
    expect(r.code).toBe(1);
    expect(
      r.err
        .split("\n")
        .filter((l) => l.startsWith("error: "))
        .map((l) => /:(\d+): /.exec(l)?.[1]),
    ).toEqual(["1", "2", "8"]);
    expect(r.out).toBe("");
  });
  it("--config-id chooses the @ lines", async () => {
    const p = file(`${VS(RS(""))}@alpha frob_a\n@^alpha frob_b\n`);
    const a = await lvsd(["--config", p, "--config-id", "alpha", "--config-test"]);
    expect(a.err).toBe(`warning: ${p}:10: unknown keyword 'frob_a' (ignored)\n`);
    const b = await lvsd(["--config", p, "--config-id", "beta", "--config-test"]);
    expect(b.err).toBe(`warning: ${p}:11: unknown keyword 'frob_b' (ignored)\n`);
  });
});
