// A window of pages over a listing the peer answers a page at a time (by cursor, never by
// offset): what the pins table scrolls through. Only `max` pages are kept; the rows before
// them are remembered by count alone, and each page by the cursor it starts after, so that
// scrolling back fetches a page again instead of keeping every row seen. A listing of a
// million pins costs the window a few hundred rows and a cursor per page passed.

export type Page<T> = { index: number; rows: T[]; next: string | null };

export class PageWindow<T> {
  /** The pages held, consecutive, first to last. */
  pages: Page<T>[] = [];
  /** For page k, the cursor it starts after (null for the first), once known. */
  private starts: (string | null)[] = [null];
  /** For page k, how many rows it had when last fetched. */
  private sizes: number[] = [];

  constructor(readonly max = 6) {}

  /** Rows before the first page held. */
  get before(): number {
    const first = this.pages[0]?.index ?? 0;
    let n = 0;
    for (let k = 0; k < first; k++) n += this.sizes[k] ?? 0;
    return n;
  }

  /** The rows held, in order. */
  get rows(): T[] {
    return this.pages.flatMap((p) => p.rows);
  }

  /** Whether rows come after the last page held. */
  get more(): boolean {
    const last = this.pages[this.pages.length - 1];
    return !!last?.next;
  }

  /** Whether pages come before the first one held. */
  get earlier(): boolean {
    return (this.pages[0]?.index ?? 0) > 0;
  }

  /** Where the page after the last one held starts, if there is one. */
  nextAfter(): { index: number; after: string } | null {
    const last = this.pages[this.pages.length - 1];
    return last?.next ? { index: last.index + 1, after: last.next } : null;
  }

  /** Where the page before the first one held starts, if there is one. */
  prevAfter(): { index: number; after: string | null } | null {
    const first = this.pages[0];
    if (!first || first.index === 0) return null;
    return { index: first.index - 1, after: this.starts[first.index - 1] ?? null };
  }

  /** Where a held page starts (to fetch it again). */
  startOf(index: number): string | null {
    return this.starts[index] ?? null;
  }

  /** Forgets everything: a new search, filter or order. */
  reset(first: Page<T>) {
    this.pages = [];
    this.starts = [null];
    this.sizes = [];
    this.put(first);
  }

  /**
   * Puts a page fetched: after the last one, before the first one, or in place of one held.
   * Keeps at most `max` pages, dropping from the far end of where the page went. A page
   * held again whose end moved (pins came or went) lets go of the pages after it: they no
   * longer follow it, and are fetched again when scrolled to. With `after` (the cursor the
   * page was fetched after), a page that no longer starts there is dropped.
   */
  put(page: Page<T>, after?: string | null) {
    // Fetched after a cursor that is no longer where this page starts (the page before it
    // was fetched again meanwhile, and ends elsewhere now): it does not follow, dropped.
    if (after !== undefined && page.index > 0 && (this.starts[page.index] ?? null) !== after) return;
    this.sizes[page.index] = page.rows.length;
    if (page.next) this.starts[page.index + 1] = page.next;
    const at = this.pages.findIndex((p) => p.index === page.index);
    if (at >= 0) {
      const moved = this.pages[at]?.next !== page.next;
      this.pages[at] = page;
      if (moved) {
        this.pages = this.pages.slice(0, at + 1);
        this.starts.length = page.index + 2;
        this.sizes.length = page.index + 1;
        if (!page.next) this.starts.length = page.index + 1;
      }
      return;
    }
    const first = this.pages[0];
    const last = this.pages[this.pages.length - 1];
    if (!first || !last) {
      this.pages = [page];
    } else if (page.index === last.index + 1) {
      this.pages.push(page);
      if (this.pages.length > this.max) this.pages.shift();
    } else if (page.index === first.index - 1) {
      this.pages.unshift(page);
      if (this.pages.length > this.max) this.pages.pop();
    }
    // A page that is neither next to the window nor in it came too late: dropped.
  }
}

/** The rows to draw of `total` rows `height` px each, seen through `viewport` px at `top`. */
export function visible(top: number, viewport: number, height: number, total: number, overscan = 8) {
  const from = Math.max(0, Math.floor(top / height) - overscan);
  const to = Math.min(total, Math.ceil((top + viewport) / height) + overscan);
  return { from, to: Math.max(from, to) };
}
