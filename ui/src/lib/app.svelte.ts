// What the window shows, shared by the views: the backend's latest snapshot, peers,
// health and pin summary (pushed as events), the open view and the message line.
import type { AddProgress, Charts, Health, Id, Snapshot, StatusSummary } from './types';

export type View = 'overview' | 'peers' | 'pins' | 'add' | 'invite' | 'settings' | 'logs';

export const app = $state({
  snapshot: null as Snapshot | null,
  peers: [] as Id[],
  health: null as Health | null,
  /** This peer's pins by status, pushed as they change (at most a few times a second). */
  summary: null as StatusSummary | null,
  view: 'overview' as View,
  message: { text: '', bad: false },
  /** Files and folders dropped on the window, waiting in the Add view for a name and copies. */
  toAdd: [] as string[],
  /** The running add's progress, pushed a few times a second while it runs. */
  adding: null as AddProgress | null,
  /** An add was started from this window and has not ended (it outlives the Add view). */
  addBusy: false,
  /** The overview's charts: samples of the last hour and day, kept by the backend. */
  charts: { hour: [], day: [] } as Charts,
  /** Bumped when something this window did may have changed the pins shown. */
  pinsChanged: 0,
  /** An invitation for the first-run screen's Join form, from a link the app was opened
   *  with or a picture of its QR code dropped on the window. */
  inviteLink: null as { text: string; from: 'link' | 'picture' } | null,
  /** Why a picture dropped on the first-run screen gave no invitation. */
  qrError: '',
});

export function say(text: string, bad = false) {
  app.message = { text, bad };
}
