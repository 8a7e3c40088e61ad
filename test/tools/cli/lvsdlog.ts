/**
 * Reading lvsd's log in tests. lvsd's stderr is a pipe there, so it logs JSON lines
 * (src/control/observe/log.ts): one event per line, `msg` last.
 */

export interface LogEvent {
  level: string;
  time: number;
  pid: number;
  hostname: string;
  name: string;
  event: string;
  msg: string;
  [field: string]: unknown;
}

/** The complete lines of `text` as events; a line that is not a JSON event throws. */
export function parseLog(text: string): LogEvent[] {
  const end = text.lastIndexOf("\n");
  if (end < 0) return [];
  return text
    .slice(0, end)
    .split("\n")
    .map((line) => {
      let o: unknown;
      try {
        o = JSON.parse(line);
      } catch {
        throw new Error(`lvsd log line is not JSON: ${line}`);
      }
      const e = o as LogEvent;
      if (typeof e !== "object" || e === null || typeof e.event !== "string" || typeof e.msg !== "string")
        throw new Error(`lvsd log line is not an event: ${line}`);
      return e;
    });
}

/** The messages of the events named `event` (all events without it). */
export function messages(text: string, event?: string): string[] {
  return parseLog(text)
    .filter((e) => event === undefined || e.event === event)
    .map((e) => e.msg);
}
