// Pure helpers the views share (tested in format.test.ts).
import type { Metric, StatusSummary, TrackerStatus } from './types';

/** Bytes in decimal units, as IPFS reports sizes. */
export function bytes(n: number | string): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 && i ? 1 : 0)} ${units[i]}`;
}

/** A peer id or CID shortened for a table cell (the whole one goes in its title). */
export function short(id: string | null | undefined): string {
  if (!id) return '—';
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id;
}

/** `peer`'s metric in `list`, if it is valid and not expired at `now` (ms). */
export function metricOf(list: Metric[] | undefined, peer: string, now = Date.now()): Metric | null {
  const m = (list ?? []).find((x) => x.peer === peer);
  return m && m.valid && m.expire / 1e6 > now ? m : null;
}

export type Tone = 'ok' | 'bad' | 'muted' | 'busy';

/** How a status looks: done, wrong, elsewhere or in progress. */
/** A peer's status as the app says it: a peer of another release that cannot answer a call
 *  (a rolling upgrade in progress: `undefined` saying "unsupported by peer …") is told as
 *  such, not as an unknown state. */
export function statusText(s: TrackerStatus, error: string): string {
  return s === 'undefined' && error.startsWith('unsupported by peer') ? 'other version' : s;
}

export function tone(s: TrackerStatus): Tone {
  if (s === 'pinned') return 'ok';
  if (s.includes('error') || s === 'unexpectedly_unpinned') return 'bad';
  if (s === 'remote' || s === 'undefined') return 'muted';
  return 'busy';
}

/** An error from a command ({kind, message}) or anything else, as text for the user. */
export function errorText(e: unknown): string {
  if (e && typeof e === 'object' && 'message' in e && typeof e.message === 'string') {
    return e.message;
  }
  return String(e);
}

/** The first word of dropped or pasted text: the CID or link to pin. */
export function droppedTarget(text: string | null | undefined): string | null {
  const what = (text ?? '').trim().split(/\s+/)[0];
  return what ? what : null;
}

/** "1 peer online" / "2 of 3 unreachable". */
export function healthLine(total: number, down: number): string {
  if (down) return `${down} of ${total} unreachable`;
  return `${total} ${total === 1 ? 'peer' : 'peers'} online`;
}

/** One group of this peer's pins as the overview shows it. */
export interface PinGroup {
  key: 'pinned' | 'pinning' | 'unpinning' | 'errors' | 'remote';
  label: string;
  count: number;
  tone: Tone;
}

/** A summary in the overview's groups: what is done, in progress either way, wrong, elsewhere. */
export function pinGroups(s: StatusSummary): PinGroup[] {
  return [
    { key: 'pinned', label: 'Pinned here', count: s.pinned, tone: 'ok' },
    { key: 'pinning', label: 'Being pinned', count: s.pin_queued + s.pinning, tone: 'busy' },
    { key: 'unpinning', label: 'Being unpinned', count: s.unpin_queued + s.unpinning, tone: 'busy' },
    { key: 'errors', label: 'In error', count: s.pin_error + s.unpin_error + s.cluster_error, tone: 'bad' },
    { key: 'remote', label: 'On other peers', count: s.remote, tone: 'muted' },
  ];
}

/** The name an add gets when the user gives none: the item's own, or the first and a count. */
export function defaultAddName(paths: string[]): string {
  const base = (p: string) => p.replace(/\/+$/, '').split('/').pop() || p;
  const [first, ...rest] = paths;
  if (first === undefined) return '';
  return rest.length ? `${base(first)} and ${rest.length} more` : base(first);
}

/** Bytes per second over the samples kept (time in ms, bytes done), newest last. */
export function rate(samples: { at: number; bytes: number }[]): number {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (!first || !last || last.at <= first.at) return 0;
  return ((last.bytes - first.bytes) * 1000) / (last.at - first.at);
}

/** Time left as people say it ("about 3 min"), or '' when it cannot be told yet. */
export function timeLeft(bytesLeft: number, perSecond: number): string {
  if (perSecond <= 0 || bytesLeft < 0) return '';
  const s = Math.ceil(bytesLeft / perSecond);
  if (s < 60) return `${s} s left`;
  if (s < 3600) return `about ${Math.round(s / 60)} min left`;
  return `about ${(s / 3600).toFixed(1)} h left`;
}

/** How long ago a time in Unix nanoseconds was, in words ("just now", "12 s ago", "3 min ago"). */
export function ago(ns: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ns / 1e6) / 1000));
  if (s < 2) return 'just now';
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

/** A share of the largest, as a percentage for a bar (0 when nothing is known). */
export function shareOf(value: number, values: number[]): number {
  const top = Math.max(0, value, ...values);
  return top > 0 ? Math.round((Math.max(0, value) / top) * 100) : 0;
}

/** The peer addresses an invitation text names (`ipfs-cluster-invite:` + base64url JSON);
 *  none when it is not one or is damaged (the backend says why when joining). */
export function invitedPeers(text: string): string[] {
  const t = text.trim();
  const prefix = 'ipfs-cluster-invite:';
  if (!t.toLowerCase().startsWith(prefix)) return [];
  try {
    const body = t.slice(prefix.length).replace(/-/g, '+').replace(/_/g, '/');
    const v: unknown = JSON.parse(atob(body + '='.repeat((4 - (body.length % 4)) % 4)));
    const list = (v as { bootstrap?: unknown }).bootstrap;
    return Array.isArray(list) ? list.filter((x): x is string => typeof x === 'string').slice(0, 10) : [];
  } catch {
    return [];
  }
}
