// Client-side routing: every view's state lives in the URL (path + query),
// so deep links and the back button work. Pages read state with useRoute()
// and change it with navigate() (a history entry) or replaceQuery() (no entry,
// for typing).
import { useEffect, useState } from 'preact/hooks';

const listeners = new Set();

function current() {
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

function notify() {
  const r = current();
  for (const l of listeners) l(r);
}

window.addEventListener('popstate', notify);

// navigate goes to path (with optional query object or string); it pushes a
// history entry unless replace is set.
export function navigate(to, { replace = false } = {}) {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  notify();
}

// withQuery returns the current path with the given query keys changed;
// null, undefined, '' and false remove a key.
export function withQuery(changes, path = location.pathname) {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === '' || v === false) q.delete(k);
    else q.set(k, String(v));
  }
  const s = q.toString();
  return path + (s ? '?' + s : '');
}

export function setQuery(changes, opts) {
  navigate(withQuery(changes), opts);
}

export function useRoute() {
  const [r, setR] = useState(current);
  useEffect(() => {
    listeners.add(setR);
    return () => listeners.delete(setR);
  }, []);
  return r;
}

// match matches a pattern like /traces/:id against a path.
export function match(pattern, path) {
  const pp = pattern.split('/').filter(Boolean);
  const ps = path.split('/').filter(Boolean);
  if (pp.length !== ps.length) return null;
  const params = {};
  for (let i = 0; i < pp.length; i++) {
    if (pp[i].startsWith(':')) params[pp[i].slice(1)] = decodeURIComponent(ps[i]);
    else if (pp[i] !== ps[i]) return null;
  }
  return params;
}

// Link is an anchor that navigates without a reload (ctrl/middle click still
// open a new tab).
export function onLinkClick(e) {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.currentTarget;
  if (a.origin !== location.origin) return;
  e.preventDefault();
  navigate(a.pathname + a.search);
}
