import { describe, expect, it } from 'vitest';
import { layout, links, peersOf } from './graph';
import type { ConnectGraph } from './types';

const g = (cluster_links: Record<string, string[]>): ConnectGraph => ({
  cluster_id: 'a', id_to_peername: {}, ipfs_links: {}, cluster_links, cluster_trust_links: {}, cluster_to_ipfs: {},
});

describe('the peers picture', () => {
  it('draws each link once, and tells one-way links', () => {
    const graph = g({ a: ['b', 'c'], b: ['a'], c: [] });
    expect(links(graph)).toEqual([{ a: 'a', b: 'b', both: true }, { a: 'a', b: 'c', both: false }]);
    expect(peersOf(graph)).toEqual(['a', 'b', 'c']);
  });

  it('places peers around a circle, one alone in the middle', () => {
    expect(layout(['a'], 200, 100)).toEqual([{ id: 'a', x: 100, y: 50 }]);
    const four = layout(['a', 'b', 'c', 'd'], 200, 200);
    expect(four[0]).toEqual({ id: 'a', x: 100, y: 30 });
    expect(four[2]).toEqual({ id: 'c', x: 100, y: 170 });
  });
});
