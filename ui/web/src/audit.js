// The Audit page: who changed what, when, from where (GET
// /api/mesh/v1/audit), newest first, with filters, paging and each
// entry's diff.
import { html } from './html.js';
import { useEffect, useState } from 'preact/hooks';
import { getJSON, sendJSON } from './api.js';
import { Mutating } from './auth.js';
import { setQuery } from './router.js';

// RollbackButton restores the policies as they were before an entry's
// change (a new version equal to version-1), after a confirming click.
function RollbackButton({ e, onDone }) {
  const [armed, setArmed] = useState(false);
  const [msg, setMsg] = useState('');
  const to = e.version - 1;
  const go = async () => {
    try {
      const r = await sendJSON('POST', `/api/mesh/v1/rollback?version=${to}`);
      onDone(r.changed ? `Rolled back to v${to}: new version v${r.version}.` : `Nothing to change: the policies already equal v${to}.`);
    } catch (err) {
      setMsg(err.message);
    }
    setArmed(false);
  };
  return html`<span data-mutating="rollback">${armed
    ? html`<button type="button" class="danger" onClick=${go}>Confirm rollback to v${to}</button> <button type="button" class="linklike" onClick=${() => setArmed(false)}>cancel</button>`
    : html`<button type="button" class="linklike" onClick=${() => setArmed(true)} title=${'Make a new version equal to v' + to + ', before this change'}>roll back</button>`}
    ${msg ? html` <span class="muted" role="status">${msg}</span>` : ''}</span>`;
}

function DiffBlock({ diff }) {
  return html`<pre class="diff">${diff.split('\n').map((l) => html`<span class=${l.startsWith('+ ') ? 'add' : l.startsWith('- ') ? 'del' : l.startsWith('# ') ? 'hdr' : ''}>${l}\n</span>`)}</pre>`;
}

export function AuditPage({ query }) {
  const who = query.get('who') || '', action = query.get('action') || '', target = query.get('target') || '';
  const [pages, setPages] = useState([]);
  const [error, setError] = useState('');
  const [open, setOpen] = useState(new Set());
  const params = (before) => {
    const q = new URLSearchParams({ limit: '50' });
    if (who) q.set('who', who);
    if (action) q.set('action', action);
    if (target) q.set('target', target);
    if (before) q.set('before', String(before));
    return q;
  };
  const [reload, setReload] = useState(0);
  const [notice, setNotice] = useState('');
  useEffect(() => {
    const ac = new AbortController();
    setPages([]);
    getJSON('/api/mesh/v1/audit?' + params(0), { signal: ac.signal }).then((p) => { setPages([p]); setError(''); }, (e) => e.name !== 'AbortError' && setError(e.message));
    return () => ac.abort();
  }, [who, action, target, reload]);
  const entries = pages.flatMap((p) => p.entries);
  const next = pages.length ? pages[pages.length - 1].next_before : 0;
  const more = () => getJSON('/api/mesh/v1/audit?' + params(next)).then((p) => setPages([...pages, p]), (e) => setError(e.message));
  const toggle = (seq) => {
    const s = new Set(open);
    s.has(seq) ? s.delete(seq) : s.add(seq);
    setOpen(s);
  };
  const filter = (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    setQuery({ who: f.get('who') || null, action: f.get('action') || null, target: f.get('target') || null });
  };
  return html`<section class="page audit">
    <h1>Audit log</h1>
    <p class="muted">Every change to the mesh: who, when, from where, what, and the version it produced.</p>
    <form class="filters" onSubmit=${filter}>
      <label>Who <input name="who" value=${who} /></label>
      <label>Action <input name="action" value=${action} placeholder="apply, delete, rollback, guard." /></label>
      <label>Target <input name="target" value=${target} placeholder="Route/web" /></label>
      <button type="submit">Filter</button>
    </form>
    ${error ? html`<p class="error" role="alert">${error}</p>` : ''}
    ${notice ? html`<p class="notice" role="status" data-testid="audit-notice">${notice}</p>` : ''}
    <table class="data" data-testid="audit-table"><thead><tr><th>#</th><th>Time</th><th>Who</th><th>Role</th><th>From</th><th>Action</th><th>Targets</th><th>Version</th><th>Outcome</th></tr></thead>
      <tbody>${entries.map((e) => html`<tr key=${e.seq} data-seq=${e.seq}>
        <td>${e.seq}</td><td>${new Date(e.time).toLocaleString([], { hour12: false })}</td><td>${e.who}</td><td>${e.role || '–'}</td><td>${e.from || '–'}</td>
        <td>${e.action}</td><td>${(e.targets || []).join(', ') || '–'}</td><td>${e.version || '–'}</td>
        <td class=${e.outcome === 'ok' ? '' : 'error'}>${e.outcome}${e.diff ? html` <button type="button" class="linklike" aria-expanded=${open.has(e.seq) ? 'true' : 'false'} onClick=${() => toggle(e.seq)}>diff</button>` : ''}
          ${e.version > 1 && e.outcome === 'ok' ? html` <${Mutating}><${RollbackButton} e=${e} onDone=${(m) => { setNotice(m); setReload(reload + 1); }} /><//>` : ''}</td></tr>
        ${open.has(e.seq) ? html`<tr class="diff-row"><td colspan="9"><${DiffBlock} diff=${e.diff} /></td></tr>` : ''}`)}</tbody></table>
    ${!entries.length && !error ? html`<p class="muted">No entries.</p>` : ''}
    ${next ? html`<button type="button" onClick=${more}>Older entries</button>` : ''}
  </section>`;
}
