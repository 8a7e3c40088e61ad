/**
 * The forwarding-method registry: one descriptor per FwdMethod (src/tables/model.ts) holding
 * every name the method goes by — the ipvsadm option that selects it, keepalived's `lb_kind`
 * name, the label in ipvsadm's Forward column — and the mode object that forwards its
 * connections (one file per mode in this directory). LOCAL (the kernel's forwarding to the
 * director itself) is listed because ipvsadm prints and saves it, but lvs-ts has no mode for it.
 *
 * The data path indexes MODE_BY_FWD by a connection's method; the control plane parses, prints
 * and lists methods from FORWARDING_METHODS. Adding a mode means one line here.
 */

import { FwdMethod } from "../../tables/model.js";
import { drMode } from "./dr.js";
import { fullnatMode } from "./fullnat.js";
import { natMode } from "./nat.js";
import { tunMode } from "./tun.js";
import type { ForwardMode } from "./types.js";

export interface ForwardingMethod {
  readonly fwd: FwdMethod;
  /**
   * The ipvsadm option that selects the method and that `-S` writes for it (ipvsadm's
   * fwd_switch()): -m, -g, -i, and our --fullnat. LOCAL has no option of its own: ipvsadm saves
   * it as -g (the kernel turns a direct-routing dest on one of its own addresses into LOCAL),
   * and -g selects ROUTE (`fwdForOption`).
   */
  readonly option: string;
  /** keepalived's `lb_kind` / `lvs_method` name, or null when keepalived.conf cannot select it. */
  readonly lbKind: string | null;
  /** ipvsadm's Forward column (fwd_name()). */
  readonly label: string;
  /** The mode that forwards this method's connections; null when lvs-ts has none. */
  readonly mode: ForwardMode | null;
  /** The mode's: replies bypass the director (DR, TUN). False without a mode. */
  readonly inputOnly: boolean;
  /** The mode's: the director is an IP hop and decrements the TTL (NAT, FULLNAT). False without a mode. */
  readonly decrementsTtl: boolean;
}

function method(
  fwd: FwdMethod,
  option: string,
  lbKind: string | null,
  label: string,
  mode: ForwardMode | null,
): ForwardingMethod {
  if (mode !== null && mode.kind !== fwd) {
    throw new Error(`forwarding method ${label}: its mode is for method ${mode.kind}, not ${fwd}`);
  }
  return {
    fwd,
    option,
    lbKind,
    label,
    mode,
    get inputOnly() {
      return mode?.inputOnly ?? false;
    },
    get decrementsTtl() {
      return mode?.decrementsTtl ?? false;
    },
  };
}

/** Every forwarding method, indexed by FwdMethod. */
export const FORWARDING_METHODS: readonly ForwardingMethod[] = [
  method(FwdMethod.MASQ, "-m", "NAT", "Masq", natMode),
  method(FwdMethod.ROUTE, "-g", "DR", "Route", drMode),
  method(FwdMethod.TUNNEL, "-i", "TUN", "Tunnel", tunMode),
  method(FwdMethod.FULLNAT, "--fullnat", null, "FullNat", fullnatMode),
  method(FwdMethod.LOCAL, "-g", null, "Local", null),
];

FORWARDING_METHODS.forEach((m, i) => {
  if (m.fwd !== i) throw new Error(`FORWARDING_METHODS[${i}] is method ${m.fwd}`);
});

/** The mode of each method, indexed by FwdMethod (null: no mode, the packet is dropped). */
export const MODE_BY_FWD: readonly (ForwardMode | null)[] = FORWARDING_METHODS.map((m) => m.mode);

/** The descriptor of a method. */
export function forwardingMethod(fwd: FwdMethod): ForwardingMethod {
  return FORWARDING_METHODS[fwd]!;
}

/** The methods lvs-ts can forward with (those with a mode), in FwdMethod order. */
export function implementedMethods(): ForwardingMethod[] {
  return FORWARDING_METHODS.filter((m) => m.mode !== null);
}

const BY_OPTION = new Map<string, FwdMethod>();
// FwdMethod order: ROUTE comes before LOCAL, so -g selects ROUTE.
for (const m of FORWARDING_METHODS) if (!BY_OPTION.has(m.option)) BY_OPTION.set(m.option, m.fwd);

/** The method an ipvsadm option selects ("-m" → MASQ, "-g" → ROUTE, ...), undefined for others. */
export function fwdForOption(option: string): FwdMethod | undefined {
  return BY_OPTION.get(option);
}
