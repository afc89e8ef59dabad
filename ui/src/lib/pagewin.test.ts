import { describe, expect, it } from 'vitest';
import { PageWindow, visible } from './pagewin';

const page = (index: number, n: number, next: string | null) => ({
  index,
  rows: Array.from({ length: n }, (_, i) => `${index}.${i}`),
  next,
});

describe('PageWindow', () => {
  it('keeps at most its pages, counting the rows it let go of', () => {
    const w = new PageWindow<string>(3);
    w.reset(page(0, 10, 'a'));
    expect(w.nextAfter()).toEqual({ index: 1, after: 'a' });
    w.put(page(1, 10, 'b'));
    w.put(page(2, 10, 'c'));
    w.put(page(3, 10, 'd'));
    expect(w.pages.map((p) => p.index)).toEqual([1, 2, 3]);
    expect(w.before).toBe(10);
    expect(w.rows[0]).toBe('1.0');
    expect(w.earlier).toBe(true);
    // Back up: page 0 is fetched again from the start, the last page let go.
    expect(w.prevAfter()).toEqual({ index: 0, after: null });
    w.put(page(0, 10, 'a'));
    expect(w.pages.map((p) => p.index)).toEqual([0, 1, 2]);
    expect(w.before).toBe(0);
    expect(w.nextAfter()).toEqual({ index: 3, after: 'c' });
    expect(w.prevAfter()).toBeNull();
  });

  it('remembers where each page starts, to go back to it', () => {
    const w = new PageWindow<string>(2);
    w.reset(page(0, 5, 'a'));
    w.put(page(1, 5, 'b'));
    w.put(page(2, 5, 'c'));
    w.put(page(3, 5, null));
    expect(w.more).toBe(false);
    expect(w.prevAfter()).toEqual({ index: 1, after: 'a' });
    expect(w.startOf(3)).toBe('c');
  });

  it('a page fetched again whose end moved lets go of the pages after it', () => {
    const w = new PageWindow<string>(4);
    w.reset(page(0, 5, 'a'));
    w.put(page(1, 5, 'b'));
    w.put(page(2, 5, 'c'));
    // Same end: nothing else changes.
    w.put(page(1, 5, 'b'));
    expect(w.pages.length).toBe(3);
    // A pin came: page 1 now ends elsewhere.
    w.put(page(1, 5, 'b2'));
    expect(w.pages.map((p) => p.index)).toEqual([0, 1]);
    expect(w.nextAfter()).toEqual({ index: 2, after: 'b2' });
    // The last page shrank to the end of the listing.
    w.put(page(1, 3, null));
    expect(w.more).toBe(false);
    expect(w.rows.length).toBe(8);
  });

  it('drops a page fetched after a cursor that is no longer where it starts', () => {
    const w = new PageWindow<string>(4);
    w.reset(page(0, 5, 'a'));
    // Page 1 asked after 'a'; meanwhile page 0 is fetched again and ends at 'a2'.
    w.put(page(0, 5, 'a2'));
    w.put(page(1, 5, 'b'), 'a');
    expect(w.pages.map((p) => p.index)).toEqual([0]);
    w.put(page(1, 5, 'b'), 'a2');
    expect(w.pages.map((p) => p.index)).toEqual([0, 1]);
  });

  it('drops a page that came too late to fit', () => {
    const w = new PageWindow<string>(2);
    w.reset(page(0, 5, 'a'));
    w.put(page(5, 5, 'z'));
    expect(w.pages.map((p) => p.index)).toEqual([0]);
  });
});

describe('visible', () => {
  it('draws what the viewport shows and a few rows around it', () => {
    expect(visible(0, 400, 40, 1000, 2)).toEqual({ from: 0, to: 12 });
    expect(visible(4000, 400, 40, 1000, 2)).toEqual({ from: 98, to: 112 });
    expect(visible(39_900, 400, 40, 1000, 2)).toEqual({ from: 995, to: 1000 });
    expect(visible(0, 400, 40, 0, 2)).toEqual({ from: 0, to: 0 });
  });
});
