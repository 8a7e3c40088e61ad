/**
 * The NAT-established ratios against the toy loops alone, for repeating in fresh processes
 * (bench/RESULTS.md): the engine's established client->server batch, ToyNat and ToyNatChecked
 * (bench/toynat.ts) on the same frames, timed interleaved (interleavedRatios, 21 rounds), after
 * a warm-up; prints the three medians on one line.
 *
 *   for k in $(seq 10); do node dist/bench/toy-ratios.js; done
 */
import { macToBytes } from "../src/lib/addr.js";
import { establishedBatches, forEachFlow, interleavedRatios, restorer, setup } from "./datapath.bench.js";
import { ToyNat, ToyNatChecked } from "./toynat.js";

const e = setup(1 << 16);
const { inb } = establishedBatches(e, 4096);
const restoreIn = restorer(inb);
const toy = new ToyNat(16, macToBytes("02:00:00:00:01:11"), macToBytes("02:00:00:00:01:01"), 1);
const toyC = new ToyNatChecked(16, macToBytes("02:00:00:00:00:01"), macToBytes("02:00:00:00:01:01"), 1, [
  macToBytes("02:00:00:00:01:11"),
  macToBytes("02:00:00:00:01:12"),
]);
restoreIn();
forEachFlow(e, inb, (s, sport, d, dport, rip, rport) => {
  toy.add(s, sport, d, dport, rip, rport);
  toyC.add(s, sport, d, dport, rip, rport, (rip & 0xff) - 1);
});
let now = 10;
const loops: [() => void, () => void, () => void] = [
  () => {
    restoreIn();
    e.process(inb, now++);
  },
  () => {
    restoreIn();
    toy.process(inb);
  },
  () => {
    restoreIn();
    toyC.process(inb, now);
  },
];
for (let k = 0; k < 300; k++) for (const f of loops) f(); // warm-up
const [a, b, c] = interleavedRatios(loops);
if (toyC.forwarded === 0 || e.fast.taken === 0) throw new Error("a loop forwarded nothing");
console.log(
  `engine/toy ${a.toFixed(3)}  engine/toy-with-checks ${b.toFixed(3)}  toy-with-checks/toy ${c.toFixed(3)}`,
);
