// HTTP helpers for the Meshscope APIs (same origin only).

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
  if (!res.ok) {
    const msg = (body && (body.error || (body.errors && body.errors[0] && body.errors[0].msg))) || text.slice(0, 200);
    throw new APIError(`${url}: HTTP ${res.status}: ${msg}`);
  }
  return body;
}

const windowSeconds = { '1m': 60, '5m': 300, '15m': 900, '1h': 3600, '6h': 21600 };
export function windowToSeconds(w) {
  return windowSeconds[w] || 300;
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
export function fmtPct(frac) {
  if (frac === undefined || frac === null || isNaN(frac)) return '–';
  const p = frac * 100;
  if (p === 0) return '0%';
  if (p < 0.1) return '<0.1%';
  return (p >= 10 ? p.toFixed(0) : p.toFixed(1)) + '%';
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
