// Pure helpers of the overview's charts (tested in chart.test.ts): samples kept as the
// backend keeps them, and SVG paths drawn from them.
import type { Charts, Sample } from './types';

export const HOUR_LEN = 360;
export const DAY_LEN = 288;
export const DAY_STEP = 300;

/** The charts with `s` added as the backend adds it: to the hour, and to the day when it
 *  starts a new 5-minute step. */
export function addSample(c: Charts, s: Sample): Charts {
  const hour = [...c.hour, s].slice(-HOUR_LEN);
  const last = c.day[c.day.length - 1];
  const newStep = !last || Math.floor(s.at / DAY_STEP) !== Math.floor(last.at / DAY_STEP);
  const day = newStep ? [...c.day, s].slice(-DAY_LEN) : c.day;
  return { hour, day };
}

/** Series stacked: each point is its own value plus the ones below it. */
export function stack(series: number[][]): number[][] {
  const out: number[][] = [];
  series.forEach((values, i) => {
    out.push(values.map((v, j) => v + (i ? (out[i - 1]?.[j] ?? 0) : 0)));
  });
  return out;
}

/** A line through `values` in a `w`×`h` box, 0 at the bottom and `max` at the top, as an
 *  SVG path; the area under it (down to `base`, or the bottom) when `area`. */
export function path(values: number[], w: number, h: number, max: number, area = false, base?: number[]): string {
  if (!values.length) return '';
  // One sample: a level line across, rather than a point nobody sees.
  if (values.length === 1) return path([values[0]!, values[0]!], w, h, max, area, base && [base[0]!, base[0]!]);
  const top = max > 0 ? max : 1;
  const x = (i: number) => (values.length === 1 ? w : (i * w) / (values.length - 1));
  const y = (v: number) => h - (Math.max(0, v) / top) * h;
  const fmt = (n: number) => Number(n.toFixed(1));
  const line = values.map((v, i) => `${i ? 'L' : 'M'}${fmt(x(i))},${fmt(y(v))}`).join(' ');
  if (!area) return line;
  const under = base
    ? base.map((v, i) => `L${fmt(x(i))},${fmt(y(v))}`).reverse().join(' ')
    : `L${fmt(x(values.length - 1))},${h} L0,${h}`;
  return `${line} ${under} Z`;
}

/** The top of a chart's scale: the largest value, a little higher, never 0. */
export function scaleMax(series: number[][]): number {
  const m = Math.max(0, ...series.flat());
  return m > 0 ? m * 1.1 : 1;
}
