// The Logs view's filtering and copying, apart from the view for its tests.
import type { LogLine } from './types';

export type LevelFilter = 'all' | 'warn' | 'error';

const RANK: Record<string, number> = { ERROR: 0, WARN: 1, INFO: 2, DEBUG: 3, TRACE: 4 };

/** The lines at `level` or worse that contain `text` (any case), in order. */
export function shownLines(lines: LogLine[], level: LevelFilter, text: string): LogLine[] {
  const worst = level === 'error' ? 0 : level === 'warn' ? 1 : 4;
  const needle = text.trim().toLowerCase();
  return lines.filter(
    (l) =>
      (RANK[l.level] ?? 4) <= worst &&
      (!needle || l.message.toLowerCase().includes(needle) || l.target.toLowerCase().includes(needle)),
  );
}

/** The lines as text, one per line, as a log file would have them (a line break inside a
 * message is written `\n`, so that no message can pass for lines of its own). */
export function logText(lines: LogLine[]): string {
  const one = (t: string) => t.replace(/\r/g, '\\r').replace(/\n/g, '\\n');
  return lines.map((l) => `${l.time} ${l.level.padEnd(5)} ${one(l.target)}: ${one(l.message)}`).join('\n');
}
