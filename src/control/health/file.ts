/**
 * FILE_CHECK (keepalived's track_file for checkers): the file holds a number (strtol base 0 of
 * its first 127 bytes; a missing, empty or unreadable file is 0, a number outside the int
 * range is ignored and the last value kept).
 *
 * - weight 0: the real server is down while the number is not 0 (with `reverse`: while it is 0).
 * - weight W: the real server stays up and its weight is its configured weight plus
 *   number * W (minus, with `reverse`), within 0..65535.
 *
 * keepalived watches the file with inotify; lvsd reads it every second. init_file writes the
 * initial value when the file does not exist (always, with overwrite) before the first read,
 * once per lvsd process.
 */

import { closeSync, existsSync, openSync, readSync, writeFileSync } from "node:fs";
import { MAX_WEIGHT } from "../../tables/services.js";
import type { FileCheckConfig } from "../config/types.js";
import { errnoText, type ProbeResult } from "./probe.js";

const initialised = new Set<string>();
/** The last valid value per file (a bad number keeps it). */
const lastValue = new Map<string, number>();

/** strtol(text, NULL, 0) as keepalived reads the file: undefined when out of range. */
export function fileNumber(text: string): number | undefined {
  const m = /^[ \t\n\r\f\v]*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)?/.exec(text);
  const body = m?.[2];
  if (!body) return 0;
  const hex = body.length > 2 && (body[1] === "x" || body[1] === "X");
  const v = hex
    ? Number.parseInt(body.slice(2), 16)
    : body.length > 1 && body[0] === "0"
      ? Number.parseInt(body, 8)
      : Number(body);
  const signed = m?.[1] === "-" ? -v : v;
  if (signed < -(2 ** 31) || signed > 2 ** 31) return undefined;
  return signed;
}

function readValue(path: string): number {
  let text = "";
  try {
    const fd = openSync(path, "r");
    try {
      const buf = Buffer.alloc(127);
      text = buf.subarray(0, readSync(fd, buf, 0, 127, null)).toString("latin1");
    } finally {
      closeSync(fd);
    }
  } catch {
    text = "";
  }
  const v = fileNumber(text);
  if (v === undefined) return lastValue.get(path) ?? 0;
  lastValue.set(path, v);
  return v;
}

export function probeFile(c: FileCheckConfig, _signal: AbortSignal): Promise<ProbeResult> {
  const label = `FILE_CHECK ${c.trackFile}`;
  if (c.init && !initialised.has(c.path)) {
    initialised.add(c.path);
    if (c.init.overwrite || !existsSync(c.path)) {
      try {
        writeFileSync(c.path, `${c.init.value}\n`);
      } catch (err) {
        return Promise.resolve({
          ok: false,
          reason: `${label} cannot initialise ${c.path}: ${errnoText(err)}`,
        });
      }
    }
  }
  const v = readValue(c.path);
  if (c.weight === 0) {
    const down = c.reverse ? v === 0 : v !== 0;
    return Promise.resolve({
      ok: !down,
      reason: `${label} ${c.path} = ${v}${c.reverse ? " (reverse)" : ""}`,
    });
  }
  const delta = v * c.weight * (c.reverse ? -1 : 1);
  const weight = Math.max(0, Math.min(MAX_WEIGHT, c.baseWeight + delta));
  return Promise.resolve({ ok: true, reason: `${label} ${c.path} = ${v}: weight ${weight}`, weight });
}
