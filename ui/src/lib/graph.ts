// The peers view's picture (tested in graph.test.ts): cluster peers placed on a circle, and
// the links between them, each drawn once.
import type { ConnectGraph } from './types';

export interface Node {
  id: string;
  x: number;
  y: number;
}

/** `ids` in order around a circle in a `w`×`h` box (one peer in the middle). */
export function layout(ids: string[], w: number, h: number): Node[] {
  const r = Math.min(w, h) / 2 - 30;
  if (ids.length === 1) return [{ id: ids[0]!, x: w / 2, y: h / 2 }];
  return ids.map((id, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / ids.length;
    return { id, x: Number((w / 2 + r * Math.cos(a)).toFixed(1)), y: Number((h / 2 + r * Math.sin(a)).toFixed(1)) };
  });
}

/** The cluster's links as undirected pairs, each once, and whether both ends see each other. */
export function links(g: ConnectGraph): { a: string; b: string; both: boolean }[] {
  const has = (a: string, b: string) => (g.cluster_links[a] ?? []).includes(b);
  const out: { a: string; b: string; both: boolean }[] = [];
  for (const [a, targets] of Object.entries(g.cluster_links)) {
    for (const b of targets ?? []) {
      if (a === b) continue;
      const [x, y] = a < b ? [a, b] : [b, a];
      if (!out.some((l) => l.a === x && l.b === y)) out.push({ a: x, b: y, both: has(a, b) && has(b, a) });
    }
  }
  return out;
}

/** Every cluster peer the graph names, sorted. */
export function peersOf(g: ConnectGraph): string[] {
  const ids = new Set<string>(Object.keys(g.cluster_links));
  for (const t of Object.values(g.cluster_links)) for (const id of t ?? []) ids.add(id);
  return [...ids].sort();
}
