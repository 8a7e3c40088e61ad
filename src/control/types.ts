/**
 * Types and constants the lvsadm modules share, in a leaf module (it imports nothing of
 * src/control), so that the modules import one way: commands.ts → extensions.ts → ipvsadm.ts →
 * health-import.ts → types.ts, and format.ts → types.ts.
 */

/** What a command gives back: its output, its error output and ipvsadm's exit status. */
export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
  /**
   * The rest of stdout, made piece by piece when asked for (big listings, only when the caller
   * asked with ExecOptions.stream): the control server sends each piece as it comes, running
   * forwarding between pieces. `collect()` (commands.ts) makes it one string.
   */
  more?: Iterator<string, void, undefined>;
  /** To wait for before `more` is read (host names for a listing without -n; names.ts). */
  prepare?: () => Promise<void>;
}

/**
 * A refused command line. `code` is the exit status ipvsadm would give. `fatal` mirrors ipvsadm's
 * exit() (fail, the help hint): in a restore (-R) it stops the whole restore; popt's own errors
 * return instead, so the restore goes on with the next line.
 */
export interface ParseError {
  message: string;
  code: number;
  fatal: boolean;
}

/** A parsed command line: a command of type C, or why it was refused. */
export type Parsed<C> = { ok: true; cmd: C } | { ok: false; error: ParseError };

/** Output options of the list command (ipvsadm's FMT_* flags). */
export interface ListFormat {
  numeric: boolean;
  stats: boolean;
  rate: boolean;
  thresholds: boolean;
  persistentConn: boolean;
  nosort: boolean;
  exact: boolean;
  tunInfo: boolean;
}

export const DEFAULT_LIST_FORMAT: Readonly<ListFormat> = {
  numeric: false,
  stats: false,
  rate: false,
  thresholds: false,
  persistentConn: false,
  nosort: false,
  exact: false,
  tunInfo: false,
};

/** Tunnel types (IP_VS_CONN_F_TUNNEL_TYPE_*). Only ipip exists in our data path. */
export const TUN_TYPES = ["ipip", "gue", "gre"] as const;
export const TUN_TYPE_IPIP = 0;

/** ipvsadm's sync daemon options (--mcast-interface, --syncid, ...; unset ones take the defaults). */
export interface DaemonOptions {
  mcastIfn: string;
  syncid: number;
  syncMaxlen?: number;
  mcastGroup?: number;
  mcastPort?: number;
  mcastTtl?: number;
}
