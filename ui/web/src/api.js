// HTTP helpers for the Meshscope APIs (same origin only).
import { onUnauthorized, csrfToken } from './auth.js';

export class APIError extends Error {}

export async function getJSON(url, { signal } = {}) {
  let res;
  try {
    res = await fetch(url, { signal, headers: { Accept: 'application/json' } });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new APIError(`${url}: ${e.message}`);
  }
  const text = await res.text();
  let body;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    throw new APIError(`${url}: HTTP ${res.status}: ${text.slice(0, 200)}`);
  }
  if (res.status === 401) onUnauthorized();
  if (!res.ok) {
    const msg = (body && (body.error || (body.errors && body.errors[0] && body.errors[0].msg))) || text.slice(0, 200);
    throw new APIError(`${url}: HTTP ${res.status}: ${msg}`);
  }
  return body;
}

// sendJSON sends a mutating request (POST, DELETE) with the session's CSRF
// token; body is a string (YAML) or an object (JSON).
export async function sendJSON(method, url, body) {
  const headers = { Accept: 'application/json', 'X-CSRF-Token': csrfToken() };
  if (typeof body === 'string') headers['Content-Type'] = 'application/yaml';
  else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(body);
  }
  const res = await fetch(url, { method, headers, body, credentials: 'same-origin' });
  if (res.status === 401) onUnauthorized();
  const b = await res.json().catch(() => null);
  if (!res.ok) throw new APIError(`${url}: HTTP ${res.status}: ${(b && b.error) || ''}`);
  return b;
}

// The windows offered everywhere (URL `window`), in seconds.
export const windowSeconds = { '1m': 60, '5m': 300, '15m': 900, '1h': 3600, '6h': 21600, '1d': 86400, '7d': 604800 };
export const windows = Object.keys(windowSeconds);
// windowToSeconds reads a window name or a duration such as 90s, 2h30m.
export function windowToSeconds(w) {
  if (windowSeconds[w]) return windowSeconds[w];
  const secs = parseDurationSeconds(w);
  return secs > 0 ? secs : 300;
}

const unitSeconds = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };
// parseDurationSeconds reads Prometheus-style durations (90s, 1h30m, 7d);
// NaN when it cannot.
export function parseDurationSeconds(s) {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;
  let m, total = 0, last = 0;
  const src = String(s || '');
  while ((m = re.exec(src))) {
    total += m[2] === 'ms' ? Number(m[1]) / 1000 : Number(m[1]) * unitSeconds[m[2]];
    last = re.lastIndex;
  }
  return src && last === src.length ? total : NaN;
}

// fmtSpan formats seconds as a short duration: 45s, 10m, 1h 5m, 2d 3h.
export function fmtSpan(secs) {
  secs = Math.max(0, Math.round(secs));
  const parts = [];
  for (const [u, n] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
    if (secs >= n || (u === 's' && !parts.length)) {
      parts.push(Math.floor(secs / n) + u);
      secs %= n;
    }
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}

// rateRange is the range of rate() for a window of secs seconds: 1m up to
// 5m windows, a twelfth of longer ones (5m for 1h).
export function rateRange(secs) {
  if (secs <= 300) return '1m';
  const r = Math.round(secs / 12);
  return r % 60 === 0 ? `${r / 60}m` : `${r}s`;
}

// promRange runs a PromQL range query and returns [{metric, points:[[t,v]...]}].
export async function promRange(query, start, end, step, opts) {
  const u = `/api/v1/query_range?query=${encodeURIComponent(query)}&start=${start}&end=${end}&step=${step}`;
  const body = await getJSON(u, opts);
  return (body.data && body.data.result) || [];
}

// promInstant runs an instant PromQL query; the result is [{metric, value}].
export async function promInstant(query, time, opts) {
  let u = `/api/v1/query?query=${encodeURIComponent(query)}`;
  if (time) u += `&time=${time}`;
  const body = await getJSON(u, opts);
  return ((body.data && body.data.result) || []).map((r) => ({ metric: r.metric, value: parseFloat(r.value[1]) }));
}

export function promString(s) {
  return '"' + String(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

// Formatting.
export function fmtRate(v) {
  if (v === undefined || v === null || isNaN(v)) return '–';
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}
// fmtPct formats a fraction (0..1) as a percentage with adaptive precision:
// two significant digits of the distance to the nearer of 0 % and 100 %,
// so 0.99834 reads 99.83 %, 0.0004 reads 0.040 %, and only exactly 0 and 1
// read 0 % and 100 % (a service with one failure in a million is not
// "100 %", one with a 0.1 % error rate is not "0 %").
export function fmtPct(frac) {
  if (frac === undefined || frac === null || isNaN(frac)) return '–';
  const p = frac * 100;
  if (p <= 0) return '0%';
  if (p >= 100) return '100%';
  const dist = Math.min(p, 100 - p);
  const decimals = Math.max(0, Math.min(4, Math.ceil(-Math.log10(dist)) + 1));
  let s = p.toFixed(decimals);
  if (Number(s) >= 100) s = '>99.9999';
  else if (Number(s) <= 0) s = '<0.0001';
  return s + '%';
}
export function fmtMs(ms) {
  if (ms === undefined || ms === null || isNaN(ms)) return '–';
  if (ms >= 1000) return (ms / 1000).toFixed(ms >= 10000 ? 0 : 2) + ' s';
  if (ms >= 10) return ms.toFixed(0) + ' ms';
  if (ms >= 1) return ms.toFixed(1) + ' ms';
  return (ms * 1000).toFixed(0) + ' µs';
}
export function fmtUs(us) {
  return fmtMs(us / 1000);
}
export function fmtTime(d) {
  const t = d instanceof Date ? d : new Date(d);
  return t.toLocaleTimeString([], { hour12: false });
}
