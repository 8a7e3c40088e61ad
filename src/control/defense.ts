/**
 * The kernel's defence against running out of memory under a flood (ip_vs_ctl.c
 * update_defense_level and defense_work_handler, docs/security.md), with its sysctl names and
 * modes: once a second (and at once when a knob is set) lvsd compares its available memory with
 * `amemthresh` and switches its three strategies:
 *
 * - `drop_entry`: remove embryonic and idle entries at random (ConnTable.randomDropEntry), once a
 *   second while active;
 * - `drop_packet`: drop one new connection in `amemthresh / (amemthresh - available)` (the data
 *   path's Engine.dropRate; counted as the drop reason `drop_packet`); in mode 3 one in
 *   `am_droprate`;
 * - `secure_tcp`: the stricter TCP transition table (tcp_states_dos), under which only the real
 *   server's answer makes a connection ESTABLISHED (and so gives it ESTABLISHED's long timeout).
 *
 * Each takes 0 (off), 1 (automatic: turns itself on when memory runs short and then reads 2), 2
 * (on, back to 1 when memory is plenty again), 3 (always on).
 *
 * lvsd's memory for connections is its connection table, allocated whole at start (`--max-conns`):
 * so "available memory" here is the table's free room, in 4 KiB pages (free entries × the bytes an
 * entry takes ÷ 4096). With the default amemthresh of 1024 pages (4 MiB) and about 132 bytes an
 * entry, memory is "short" when fewer than about 32,000 entries are free.
 */
import { randomBytes } from "node:crypto";
import { TCP_TRANSITIONS_DOS } from "../datapath/conntrack/states.js";
import type { Engine } from "../datapath/engine.js";
import { SECRET_ROTATE_MS } from "../datapath/synproxy.js";
import type { EventLog } from "./observe/log.js";

const PAGE = 4096;
/** DEFENSE_TIMER_PERIOD. */
export const DEFENSE_PERIOD_MS = 1000;

export interface DefenseState {
  /** Available memory, pages. */
  availmem: number;
  nomem: boolean;
  dropEntry: boolean;
  dropRate: number;
  secureTcp: boolean;
}

export class Defense {
  private readonly engine: Engine;
  private readonly log: EventLog | undefined;
  private dropEntryOn = false;
  /** The kernel's old_secure_tcp: the mode secure_tcp had at the last evaluation. */
  private oldSecureTcp = 0;
  private timer: NodeJS.Timeout | undefined;
  private secretTimer: NodeJS.Timeout | undefined;
  private lastNomem = false;
  /**
   * Where the connection table's size and fill come from when they are not the engine's own:
   * lvsd --workers sets it to the workers' summed capacity and entries (docs/workers.md), the
   * master's table being empty and small. null: the engine's table.
   */
  room: (() => { capacity: number; count: number }) | null = null;

  constructor(engine: Engine, log?: EventLog) {
    this.engine = engine;
    this.log = log;
    engine.sysctl.onDefenseChange = () => this.update();
  }

  /** The table's free room in pages (what the kernel's si_meminfo gives it). */
  availablePages(): number {
    const ct = this.engine.ct;
    const perEntry = ct.byteSize() / ct.capacity;
    const r = this.room?.() ?? ct;
    return Math.floor(((r.capacity - r.count) * perEntry) / PAGE);
  }

  /** update_defense_level: evaluate memory and switch the strategies. */
  update(): DefenseState {
    const s = this.engine.sysctl;
    const e = this.engine;
    const availmem = this.availablePages();
    const amemthresh = Math.max(s.amemthresh, 0);
    const nomem = availmem < amemthresh;

    switch (s.dropEntry) {
      case 0:
        this.dropEntryOn = false;
        break;
      case 1:
        this.dropEntryOn = nomem;
        if (nomem) s.dropEntry = 2;
        break;
      case 2:
        this.dropEntryOn = nomem;
        if (!nomem) s.dropEntry = 1;
        break;
      case 3:
        this.dropEntryOn = true;
        break;
    }

    const rate = nomem ? Math.trunc(amemthresh / (amemthresh - availmem)) : 0;
    switch (s.dropPacket) {
      case 0:
        e.dropRate = 0;
        break;
      case 1:
        if (nomem) {
          e.dropRate = e.dropCounter = rate;
          s.dropPacket = 2;
        } else e.dropRate = 0;
        break;
      case 2:
        if (nomem) e.dropRate = e.dropCounter = rate;
        else {
          e.dropRate = 0;
          s.dropPacket = 1;
        }
        break;
      case 3:
        e.dropRate = s.amDroprate;
        break;
    }

    let toChange = -1;
    const old = this.oldSecureTcp;
    switch (s.secureTcp) {
      case 0:
        if (old >= 2) toChange = 0;
        break;
      case 1:
        if (nomem) {
          if (old < 2) toChange = 1;
          s.secureTcp = 2;
        } else if (old >= 2) toChange = 0;
        break;
      case 2:
        if (nomem) {
          if (old < 2) toChange = 1;
        } else {
          if (old >= 2) toChange = 0;
          s.secureTcp = 1;
        }
        break;
      case 3:
        if (old < 2) toChange = 1;
        break;
    }
    this.oldSecureTcp = s.secureTcp;
    if (toChange >= 0) e.ct.setSecureTcp(s.secureTcp > 1);

    if (nomem !== this.lastNomem) {
      this.lastNomem = nomem;
      this.log?.warn(
        {
          event: nomem ? "defense.memory_short" : "defense.memory_ok",
          availmem,
          amemthresh,
          dropEntry: s.dropEntry,
          dropPacket: s.dropPacket,
          secureTcp: s.secureTcp,
        },
        nomem
          ? `connection table nearly full (${availmem} pages free, amemthresh ${amemthresh}): defence strategies in automatic mode are on`
          : `connection table has room again (${availmem} pages free): automatic defence strategies are off`,
      );
    }
    return {
      availmem,
      nomem,
      dropEntry: this.dropEntryOn,
      dropRate: e.dropRate,
      secureTcp: e.ct.transitions === TCP_TRANSITIONS_DOS,
    };
  }

  /** defense_work_handler: evaluate, then drop entries when drop_entry is active. */
  tick(random?: () => number): number {
    this.update();
    return this.dropEntryOn ? this.engine.ct.randomDropEntry(random) : 0;
  }

  /**
   * The SYN proxy's cookie secret (src/datapath/synproxy.ts): a new one from the system's
   * random source; the previous one keeps validating the cookies in flight.
   */
  rotateSynProxySecret(): void {
    const b = randomBytes(8);
    this.engine.synproxy.rotate(b.readUInt32BE(0), b.readUInt32BE(4));
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), DEFENSE_PERIOD_MS);
    this.timer.unref();
    // Twice at start: neither the secret nor the "previous" one is Math.random's.
    this.rotateSynProxySecret();
    this.rotateSynProxySecret();
    this.secretTimer = setInterval(() => this.rotateSynProxySecret(), SECRET_ROTATE_MS);
    this.secretTimer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.secretTimer) clearInterval(this.secretTimer);
    this.timer = undefined;
    this.secretTimer = undefined;
    if (this.engine.sysctl.onDefenseChange) this.engine.sysctl.onDefenseChange = null;
  }
}
