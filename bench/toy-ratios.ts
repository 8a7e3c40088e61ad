/**
 * The NAT-established ratios against the toy loops alone, for repeating in fresh processes
 * (bench/RESULTS.md): the engine's established client->server batch, ToyNat and ToyNatChecked
 * (bench/toynat.ts) on the same frames, timed interleaved (interleavedRatios, 21 rounds), after
 * a warm-up; prints the three medians on one line.
 *
 *   for k in $(seq 10); do node dist/bench/toy-ratios.js; done
 */
import {
  establishedBatches,
  interleavedRatios,
  restorer,
  setup,
  toyLoops,
  toyReferences,
} from "./datapath.bench.js";

const e = setup(1 << 16);
const { inb } = establishedBatches(e, 4096);
const restoreIn = restorer(inb);
const { toy, toyC } = toyReferences(e, inb, restoreIn);
let now = 10;
const loops = toyLoops(e, inb, restoreIn, toy, toyC, () => now++);
for (let k = 0; k < 300; k++) for (const f of loops) f(); // warm-up
const [a, b, c] = interleavedRatios(loops);
if (toyC.forwarded === 0 || e.fast.taken === 0) throw new Error("a loop forwarded nothing");
console.log(
  `engine/toy ${a.toFixed(3)}  engine/toy-with-checks ${b.toFixed(3)}  toy-with-checks/toy ${c.toFixed(3)}`,
);
