/**
 * IP protocol numbers (IANA "Assigned Internet Protocol Numbers"): the one home for them. The
 * packet views, the service table, the control plane and the tools all import from here.
 */
export const IPPROTO_ICMP = 1;
export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_SCTP = 132;
