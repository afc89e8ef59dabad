import { describe, expect, it } from 'vitest';
import { logText, shownLines } from './logs';
import type { LogLine } from './types';

const line = (seq: number, level: string, message: string, target = 'ipfs_cluster::pintracker'): LogLine => ({
  seq, time: '2026-12-03T12:00:00.000Z', level, target, message,
});

describe('log lines', () => {
  const lines = [
    line(1, 'INFO', 'peer ready'),
    line(2, 'WARN', 'IPFS is slow'),
    line(3, 'ERROR', 'pin failed: context deadline exceeded'),
    line(4, 'DEBUG', 'a detail', 'libp2p_swarm'),
  ];

  it('keeps the lines at a level or worse, containing a text in any case', () => {
    expect(shownLines(lines, 'all', '').map((l) => l.seq)).toEqual([1, 2, 3, 4]);
    expect(shownLines(lines, 'warn', '').map((l) => l.seq)).toEqual([2, 3]);
    expect(shownLines(lines, 'error', '').map((l) => l.seq)).toEqual([3]);
    expect(shownLines(lines, 'all', 'PIN FAILED').map((l) => l.seq)).toEqual([3]);
    expect(shownLines(lines, 'all', 'swarm').map((l) => l.seq)).toEqual([4]);
    expect(shownLines(lines, 'warn', 'detail')).toEqual([]);
  });

  it('keeps a message with line breaks on its line when copied', () => {
    expect(logText([line(9, 'INFO', 'one\n2026-01-01 ERROR forged')])).toBe(
      '2026-12-03T12:00:00.000Z INFO  ipfs_cluster::pintracker: one\\n2026-01-01 ERROR forged',
    );
  });

  it('copies as a log file reads', () => {
    expect(logText(lines.slice(1, 3))).toBe(
      '2026-12-03T12:00:00.000Z WARN  ipfs_cluster::pintracker: IPFS is slow\n' +
        '2026-12-03T12:00:00.000Z ERROR ipfs_cluster::pintracker: pin failed: context deadline exceeded',
    );
  });
});
