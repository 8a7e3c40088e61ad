/** A firewall-mark rule for tests: a MARK rule (value 1, full mask) matching everything, with `o` over it. */
import { emptyMarkRule, type MarkRule, MarkTarget } from "../../src/tables/marks.js";

export function markRule(o: Partial<MarkRule>): MarkRule {
  return { ...emptyMarkRule(), target: MarkTarget.MARK, value: 1, mask: 0xffffffff, ...o };
}
