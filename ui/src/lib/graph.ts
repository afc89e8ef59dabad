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

/** Pairs of cluster peers whose IPFS nodes are connected (in either direction), each once. */
export function ipfsLinks(g: ConnectGraph): { a: string; b: string }[] {
  const clusterOf = new Map<string, string>();
  for (const [peer, ipfs] of Object.entries(g.cluster_to_ipfs)) if (ipfs) clusterOf.set(ipfs, peer);
  const out: { a: string; b: string }[] = [];
  for (const [from, tos] of Object.entries(g.ipfs_links)) {
    const a0 = clusterOf.get(from);
    if (!a0) continue;
    for (const to of tos ?? []) {
      const b0 = clusterOf.get(to);
      if (!b0 || b0 === a0) continue;
      const [a, b] = a0 < b0 ? [a0, b0] : [b0, a0];
      if (!out.some((l) => l.a === a && l.b === b)) out.push({ a, b });
    }
  }
  return out;
}

/** A curve from `p` to `q` bowed to one side, so that it is seen beside a straight line
 *  between the same two points (an SVG path). */
export function bow(p: { x: number; y: number }, q: { x: number; y: number }, by = 18): string {
  const mx = (p.x + q.x) / 2;
  const my = (p.y + q.y) / 2;
  const dx = q.x - p.x;
  const dy = q.y - p.y;
  const len = Math.hypot(dx, dy) || 1;
  const cx = mx - (dy / len) * by;
  const cy = my + (dx / len) * by;
  const f = (n: number) => Number(n.toFixed(1));
  return `M${f(p.x)},${f(p.y)} Q${f(cx)},${f(cy)} ${f(q.x)},${f(q.y)}`;
}
