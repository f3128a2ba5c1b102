// Time state of the pages in the URL (pure; see time.js for the controls).
import { windows, windowSeconds, fmtSpan } from './api.js';

// epochOf reads RFC 3339 or Unix seconds; 0 when empty or unreadable.
export function epochOf(v) {
  if (!v) return 0;
  if (/^\d+(\.\d+)?$/.test(v)) return Math.floor(Number(v));
  const t = new Date(v).getTime();
  return isNaN(t) ? 0 : Math.floor(t / 1000);
}

// timeParams reads the time state from the URL query.
export function timeParams(q) {
  const from = epochOf(q.get('from')), to = epochOf(q.get('to'));
  if (from && to && to > from) {
    return { window: fmtSpan(to - from).replace(' ', ''), secs: to - from, at: to, from, to, absolute: true, replay: true };
  }
  const window = windows.includes(q.get('window')) ? q.get('window') : '1m';
  const at = epochOf(q.get('at'));
  return { window, secs: windowSeconds[window], at, from: 0, to: 0, absolute: false, replay: at > 0 };
}

// apiTime gives the API parameters of a time state: window (a name, or
// seconds for an absolute range) and at (Unix seconds, only when replaying).
export function apiTime(t) {
  const o = { window: t.absolute ? `${t.secs}s` : t.window };
  if (t.at) o.at = String(t.at);
  return o;
}

// timeKey changes whenever the time state does (effect dependency).
export function timeKey(t) {
  return `${t.window}|${t.secs}|${t.at}`;
}

// coverageShort says whether the data is shorter than the window: the
// APIs report `covered_seconds`, the seconds of the requested window that
// have data. A few seconds (or 2 %) short does not count.
export function coverageShort(covered, secs) {
  return typeof covered === 'number' && covered < secs - Math.max(5, secs * 0.02);
}
