/**
 * Which forwarding methods lvsd can carry today. The parser accepts all of ipvsadm's (-g, -i, -m)
 * and our --fullnat; commands that would create or change a dest with a method not listed here
 * are refused with the message below. When a mode lands in src/datapath/modes/, add it to the list.
 */

import { FwdMethod } from "../tables/model.js";

/** Forwarding methods the data path implements now. */
export const SUPPORTED_FWD_METHODS: readonly FwdMethod[] = [
  FwdMethod.MASQ,
  FwdMethod.ROUTE,
  FwdMethod.TUNNEL,
  FwdMethod.FULLNAT,
];

/** The option that selects each method, for messages and help. */
export const FWD_OPTIONS: Readonly<Record<FwdMethod, string>> = {
  [FwdMethod.MASQ]: "-m",
  [FwdMethod.ROUTE]: "-g",
  [FwdMethod.TUNNEL]: "-i",
  [FwdMethod.FULLNAT]: "--fullnat",
  [FwdMethod.LOCAL]: "-g",
};

const NOT_YET: Readonly<Record<FwdMethod, string>> = {
  [FwdMethod.MASQ]: "NAT (-m) forwarding is not implemented yet",
  [FwdMethod.ROUTE]: "DR (-g) forwarding is not implemented yet",
  [FwdMethod.TUNNEL]: "TUN (-i) forwarding is not implemented yet",
  [FwdMethod.FULLNAT]: "FULLNAT forwarding is not implemented yet",
  [FwdMethod.LOCAL]: "Local forwarding is not implemented yet",
};

export function isFwdSupported(fwd: FwdMethod): boolean {
  return SUPPORTED_FWD_METHODS.includes(fwd);
}

/** The options of the supported methods, e.g. "-m". */
export function supportedFwdOptions(): string {
  return SUPPORTED_FWD_METHODS.map((m) => FWD_OPTIONS[m]).join(", ");
}

/**
 * The refusal for an unsupported method: the reason on the first line, then what is available
 * (a dest added without -m/-i/--fullnat is DR, ipvsadm's default, which is why -g can appear
 * without being typed).
 */
export function fwdRefusal(fwd: FwdMethod): string {
  return `${NOT_YET[fwd]}\nAvailable now: ${supportedFwdOptions()} (without a method option the default is -g, as in ipvsadm)`;
}
