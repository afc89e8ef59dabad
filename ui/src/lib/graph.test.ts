import { describe, expect, it } from 'vitest';
import { bow, ipfsLinks, layout, links, peersOf } from './graph';
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

  it("joins the cluster peers whose IPFS nodes are connected, each pair once", () => {
    const graph = g({ a: ['b'], b: ['a'], c: [] });
    graph.cluster_to_ipfs = { a: 'Qa', b: 'Qb', c: 'Qc' };
    // a's node reaches b's (and b's a's), c's node reaches a stranger only.
    graph.ipfs_links = { Qa: ['Qb', 'Qstranger'], Qb: ['Qa'], Qc: ['Qstranger', 'Qc'] };
    expect(ipfsLinks(graph)).toEqual([{ a: 'a', b: 'b' }]);
    graph.ipfs_links.Qc = ['Qa'];
    expect(ipfsLinks(graph)).toEqual([{ a: 'a', b: 'b' }, { a: 'a', b: 'c' }]);
  });

  it('bows a curve to one side of the straight line', () => {
    expect(bow({ x: 0, y: 0 }, { x: 100, y: 0 }, 10)).toBe('M0,0 Q50,10 100,0');
  });
});
