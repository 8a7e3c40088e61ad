/**
 * keepalived.conf as lvsd understands it: the virtual servers, their real servers and the
 * checkers, with every default and inherited value resolved (virtual server → real server →
 * checker, as keepalived inherits them). Times are seconds (keepalived's <TIMER>, fractions
 * allowed); addresses are uint32.
 */

import type { FwdMethod } from "../../tables/model.js";
import type { ServiceKey, ServiceOptions } from "../../tables/services.js";

/** Where a configuration item was written, for messages. */
export interface Where {
  readonly file: string;
  readonly line: number;
}

export const CHECKER_TYPES = [
  "TCP_CHECK",
  "HTTP_GET",
  "SSL_GET",
  "PING_CHECK",
  "UDP_CHECK",
  "MISC_CHECK",
  "SMTP_CHECK",
  "DNS_CHECK",
  "FILE_CHECK",
] as const;
export type CheckerType = (typeof CHECKER_TYPES)[number];

/** Scheduling of one checker (keepalived's defaults in parentheses). */
export interface CheckTiming {
  /** Seconds between checks (60). */
  delayLoop: number;
  /** Seconds a probe may take: connect, request and reply (5). */
  connectTimeout: number;
  /** Extra probes after a failure before an up checker goes down (1; MISC_CHECK 0). */
  retry: number;
  /** Seconds before such a retry (1; HTTP_GET and SSL_GET 3). */
  delayBeforeRetry: number;
  /** The first probe waits a random time up to this many seconds (delay_loop). */
  warmup: number;
  /** Start down until the first success. */
  alpha: boolean;
}

/** Where a probe goes and where it leaves from. */
export interface ProbeTarget {
  addr: number;
  port: number;
  /** Source address (bindto); the kernel picks one when absent. */
  bindto?: number;
  /** Source port (bind_port). */
  bindPort?: number;
}

export interface UrlCheck {
  path: string;
  /** Lower-case hex MD5 of the body, when the check wants one. */
  digest?: string;
  /** Accepted status codes as inclusive ranges (default 200-299). */
  status: readonly (readonly [number, number])[];
  virtualhost?: string;
}

interface CheckerBase {
  readonly where: Where;
  timing: CheckTiming;
  /** Log every failed probe, not only state changes (log_all_failures). */
  logAllFailures?: boolean;
}

export interface TcpCheckConfig extends CheckerBase {
  type: "TCP_CHECK";
  target: ProbeTarget;
}

export interface HttpCheckConfig extends CheckerBase {
  type: "HTTP_GET" | "SSL_GET";
  target: ProbeTarget;
  urls: UrlCheck[];
  /** "1.0" (default), "1.0C" (1.0 with Connection: close) or "1.1" (with Connection: close). */
  protocol: "1.0" | "1.0C" | "1.1";
}

export interface PingCheckConfig extends CheckerBase {
  type: "PING_CHECK";
  target: ProbeTarget;
}

export interface UdpCheckConfig extends CheckerBase {
  type: "UDP_CHECK";
  target: ProbeTarget;
  /** Datagram to send; empty = 16 random bytes per probe. */
  payload: Uint8Array;
  requireReply: boolean;
  /** Expected reply prefix and its mask (0x0f/0xf0 where the pattern has an X nibble). */
  reply?: { bytes: Uint8Array; mask: Uint8Array };
  minReplyLength: number;
  maxReplyLength: number;
}

export interface MiscCheckConfig extends CheckerBase {
  type: "MISC_CHECK";
  /** misc_path split into program and arguments. */
  argv: string[];
  /** Seconds before the script is killed (misc_timeout; default delay_loop). */
  timeout: number;
  /** Exit codes 2..255 are success with weight = code - 2. */
  dynamic: boolean;
}

export interface SmtpCheckConfig extends CheckerBase {
  type: "SMTP_CHECK";
  target: ProbeTarget;
  /** HELO argument (helo_name; default smtpchecker.keepalived.org). */
  heloName: string;
}

export interface DnsCheckConfig extends CheckerBase {
  type: "DNS_CHECK";
  target: ProbeTarget;
  /** Query type number (type; default SOA = 6). */
  qtype: number;
  /** Query name (name; default "", the root). */
  name: string;
}

export interface FileCheckConfig extends CheckerBase {
  type: "FILE_CHECK";
  /** The track_file block's name and file. */
  trackFile: string;
  path: string;
  /**
   * 0: the file's number non-zero means down (reverse: zero means down). Otherwise the real
   * server stays up and its weight becomes baseWeight + number * weight (* -1 with reverse).
   */
  weight: number;
  reverse: boolean;
  /** The real server's configured weight. */
  baseWeight: number;
  /** init_file: written when the file does not exist (or always, with overwrite) before the first read. */
  init?: { value: number; overwrite: boolean };
}

/**
 * A checker lvsd cannot run (BFD_CHECK, a misspelled checker block): the real server is held
 * down, never assumed up.
 */
export interface UnrunnableCheckConfig extends CheckerBase {
  type: "UNRUNNABLE";
  /** The keyword as written. */
  keyword: string;
  why: string;
}

export type CheckerConfig =
  | TcpCheckConfig
  | HttpCheckConfig
  | PingCheckConfig
  | UdpCheckConfig
  | MiscCheckConfig
  | SmtpCheckConfig
  | DnsCheckConfig
  | FileCheckConfig
  | UnrunnableCheckConfig;

export interface RealServerConfig {
  readonly where: Where;
  addr: number;
  port: number;
  /** lvs_method (the real server's, else the virtual server's; default NAT). */
  fwd: FwdMethod;
  weight: number;
  uThreshold: number;
  lThreshold: number;
  /** Weight 0 instead of removal when down. */
  inhibit: boolean;
  notifyUp?: string[];
  notifyDown?: string[];
  checkers: CheckerConfig[];
}

export interface SorryServerConfig {
  addr: number;
  port: number;
  /** sorry_server_lvs_method, else the virtual server's lvs_method. */
  fwd: FwdMethod;
  weight: number;
  /** sorry_server_inhibit: kept at weight 0 while not needed. */
  inhibit: boolean;
}

export interface VirtualServerConfig {
  readonly where: Where;
  /** Display name and identity across reloads: "TCP 10.0.0.100:80" or "group web (TCP)". */
  name: string;
  /** The services this block makes (one, or one per virtual_server_group entry). */
  keys: ServiceKey[];
  opts: ServiceOptions;
  quorum: number;
  hysteresis: number;
  quorumUp?: string[];
  quorumDown?: string[];
  sorry?: SorryServerConfig;
  omega: boolean;
  realServers: RealServerConfig[];
}

/**
 * One `vrrp_instance` block, as written (keepalived's defaults and corrections are applied by
 * resolveVrrpConfig in src/control/vrrp/instance.ts; the interface is checked against lvsd's
 * links by src/control/vrrp/manager.ts).
 */
export interface VrrpInstanceSpec {
  readonly where: Where;
  name: string;
  /** `interface`: one of lvsd's --link names. */
  interface: string;
  readonly interfaceWhere: Where;
  state?: "MASTER" | "BACKUP";
  vrid: number;
  priority?: number;
  /** advert_int, seconds. */
  advertInt?: number;
  /** The instance's vrrp_version, else global_defs' (undefined: keepalived's default, 2). */
  version?: 2 | 3;
  /** authentication { auth_type PASS; auth_pass ... }. */
  authPass?: string;
  /** virtual_ipaddress (in the adverts). */
  vips: number[];
  /** virtual_ipaddress_excluded (owned with the instance, not in the adverts). */
  vipsExcluded: number[];
  nopreempt: boolean;
  /** preempt_delay, seconds. */
  preemptDelay?: number;
  unicastSrcIp?: number;
  unicastPeers: number[];
  downTimerAdverts?: number;
  /** notify_master / notify_backup / notify_fault / notify_stop / notify, split into argv. */
  notify?: VrrpNotifySpec;
  /** track_script entries, resolved against the vrrp_script blocks (unknown names are warned and dropped). */
  trackScripts?: VrrpTrackScript[];
  /** track_interface entries: lvsd's --link names. */
  trackInterfaces?: VrrpTrackInterface[];
  /**
   * Gratuitous ARP (keepalived's garp_master_* keywords, defaults from global_defs'
   * vrrp_garp_master_* and vrrp_garp_interval, else keepalived's): resolved by the parser.
   */
  garp?: VrrpGarpSpec;
}

/** Gratuitous ARP settings of one instance (keepalived 2.2 defaults: 5 s, 5, 0 = off, 1, 0). */
export interface VrrpGarpSpec {
  /** garp_master_delay: seconds after becoming MASTER for the second burst (0: none). */
  delay: number;
  /** garp_master_repeat: gratuitous ARPs per address in a burst (at least 1). */
  repeat: number;
  /** garp_master_refresh: seconds between refresh bursts while MASTER (0: off). */
  refresh: number;
  /** garp_master_refresh_repeat: gratuitous ARPs per address in a refresh burst (at least 1). */
  refreshRepeat: number;
  /** global_defs vrrp_garp_interval: seconds between two gratuitous ARPs on a link (0: back to back). */
  interval: number;
}

/** One `vrrp_sync_group NAME { group { ... } notify_* ... }` block. */
export interface VrrpSyncGroupSpec {
  readonly where: Where;
  name: string;
  /** The member instances' names (each an existing vrrp_instance, in no other group). */
  members: string[];
  /** notify_master / notify_backup / notify_fault / notify_stop / notify ("GROUP" NAME STATE 0 appended). */
  notify: VrrpNotifySpec;
  /** sync_group_tracking_weight: keep the members' tracking weights (keepalived ignores them otherwise). */
  trackingWeight: boolean;
}

/** An instance's notify scripts (keepalived's notify_* keywords), each split into argv. */
export interface VrrpNotifySpec {
  master?: string[];
  backup?: string[];
  fault?: string[];
  stop?: string[];
  /** `notify`: called with "INSTANCE" NAME STATE PRIORITY appended. */
  any?: string[];
}

/** One `vrrp_script NAME { ... }` block. */
export interface VrrpScriptSpec {
  readonly where: Where;
  name: string;
  /** `script`, split into program and arguments (no shell). */
  argv: string[];
  /** Seconds between runs (default 1, at least 1). */
  interval: number;
  /** Seconds before a run is killed and counts as a failure (default: the interval). */
  timeout: number;
  /** -253..253 (default 0: a failure puts the tracking instances in FAULT). */
  weight: number;
  reverse: boolean;
  /** Successes needed to go up / failures to go down (default 1 each). */
  rise: number;
  fall: number;
  /** init_fail: the script starts as failed instead of unknown. */
  initFail: boolean;
}

/** A track_script entry: the script and the weight this instance uses (its own, else the script's). */
export interface VrrpTrackScript {
  readonly where: Where;
  script: VrrpScriptSpec;
  weight: number;
  reverse: boolean;
}

/** A track_interface entry. */
export interface VrrpTrackInterface {
  readonly where: Where;
  name: string;
  /** 0 (default): down puts the instance in FAULT; else -253..253 applied to the priority. */
  weight: number;
  reverse: boolean;
}

/**
 * keepalived's `lvs_sync_daemon IFACE VRRP_INSTANCE [id N] [maxlen N] [port N] [ttl N]
 * [group ADDR]`: connection sync as master while the instance is MASTER, as backup otherwise.
 */
export interface LvsSyncDaemonSpec {
  where: Where;
  interface: string;
  instance: string;
  syncid?: number;
  maxlen?: number;
  port?: number;
  ttl?: number;
  group?: number;
}

export interface KeepalivedConfig {
  /** The file given, and every file it included. */
  files: string[];
  virtualServers: VirtualServerConfig[];
  /** vrrp_instance blocks, in file order. */
  vrrpInstances: VrrpInstanceSpec[];
  /** vrrp_sync_group blocks, in file order (members checked against vrrpInstances). */
  vrrpSyncGroups?: VrrpSyncGroupSpec[];
  /** global_defs lvs_sync_daemon (its instance checked; syncid defaulted to the instance's VRID). */
  lvsSyncDaemon?: LvsSyncDaemonSpec;
  /** "FILE:LINE: ..." for unknown or unsupported keywords (the rest still applies). */
  warnings: string[];
}

/** A file lvsd cannot apply: syntax errors, bad values, unsupported features. */
export class ConfigError extends Error {
  readonly code = "ECONFIG";
  readonly file: string;
  readonly line: number;
  /** The warnings found before (and around) the error, for --config-test and logs. */
  warnings: string[] = [];
  /** Every error found, this one first (keepalived reads on after most of them). */
  errors: ConfigError[] = [];
  constructor(where: Where, message: string) {
    super(where.line > 0 ? `${where.file}:${where.line}: ${message}` : `${where.file}: ${message}`);
    this.name = "ConfigError";
    this.file = where.file;
    this.line = where.line;
  }
}
