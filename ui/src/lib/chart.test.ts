import { describe, expect, it } from 'vitest';
import { addSample, DAY_STEP, HOUR_LEN, path, scaleMax, stack } from './chart';
import type { Sample } from './types';

const sample = (at: number, pinned = 0): Sample => ({
  at, pinned, in_progress: 0, errors: 0, remote: 0, bytes_in: 0, bytes_out: 0, free: null, used: null, ipfs_in: null, ipfs_out: null, peers_free: {},
});

describe('charts', () => {
  it('keeps the hour and the day as the backend does', () => {
    let c = { hour: [] as Sample[], day: [] as Sample[] };
    for (let i = 0; i < 400; i++) c = addSample(c, sample(DAY_STEP * 1000 + i * 10, i));
    expect(c.hour.length).toBe(HOUR_LEN);
    expect(c.hour[0]?.pinned).toBe(40);
    // 4,000 s: one sample per 5-minute step started.
    expect(c.day.length).toBe(14);
  });

  it('stacks series and draws them in the box', () => {
    expect(stack([[1, 2], [3, 4], [0, 1]])).toEqual([[1, 2], [4, 6], [4, 7]]);
    expect(path([0, 5, 10], 100, 50, 10)).toBe('M0,50 L50,25 L100,0');
    expect(path([0, 10], 100, 50, 10, true)).toBe('M0,50 L100,0 L100,50 L0,50 Z');
    expect(path([4, 6], 100, 50, 10, true, [2, 2])).toBe('M0,30 L100,20 L100,40 L0,40 Z');
    expect(path([], 100, 50, 10)).toBe('');
    expect(path([5], 100, 50, 10)).toBe('M0,25 L100,25');
    expect(scaleMax([[0, 0]])).toBe(1);
    expect(scaleMax([[5], [10]])).toBeCloseTo(11);
  });
});
