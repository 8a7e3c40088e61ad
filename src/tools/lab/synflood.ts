/**
 * The arguments of `timeout` that run an hping3 SYN flood from random sources to `vip`:80 for
 * `seconds` (timeout's SIGINT ends it): one SYN every `interval` (hping3's -i, e.g. "u100":
 * 10,000 a second), or as fast as hping3 can with "flood". For the lab tests and the flood bench.
 */
export function synFloodArgs(vip: string, seconds: number, interval: string): string[] {
  const rate = interval === "flood" ? ["--flood"] : ["-i", interval];
  return ["-s", "INT", String(seconds), "hping3", "-q", "-S", "-p", "80", "--rand-source", ...rate, vip];
}
