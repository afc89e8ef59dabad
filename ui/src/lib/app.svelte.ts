// What the window shows, shared by the views: the backend's latest snapshot, peers,
// health and pin summary (pushed as events), the open view and the message line.
import type { Health, Id, Snapshot, StatusSummary } from './types';

export type View = 'overview' | 'peers' | 'pins' | 'invite';

export const app = $state({
  snapshot: null as Snapshot | null,
  peers: [] as Id[],
  health: null as Health | null,
  /** This peer's pins by status, pushed as they change (at most a few times a second). */
  summary: null as StatusSummary | null,
  view: 'overview' as View,
  message: { text: '', bad: false },
  /** Bumped when something this window did may have changed the pins shown. */
  pinsChanged: 0,
});

export function say(text: string, bad = false) {
  app.message = { text, bad };
}
