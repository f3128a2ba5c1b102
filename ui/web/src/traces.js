// Traces pages: search (the native GET /api/mesh/traces, which sorts over
// the whole time range on the server; services from the Jaeger-compatible
// API) and the trace view (waterfall with virtualised rows, span details,
// critical path).
import { html } from './html.js';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { getJSON, fmtUs, fmtMs, fmtTime } from './api.js';
import { navigate, setQuery, onLinkClick } from './router.js';
import { summarize, buildRows, criticalPath, spanIsError, tagValue, parentOf, lookbacks, searchURL } from './traceutil.js';

// Sort orders of the search, applied by the server before the limit.
const sorts = { newest: 'newest first', longest: 'longest first', errors: 'most errors first' };


// parseTags reads "k=v k2="v w"" into an object; it throws naming the bad part.
export function parseTags(s) {
  const out = {};
  const re = /\s*([^\s=]+)=("([^"]*)"|\S*)/gy;
  let m, last = 0;
  const src = (s || '').trim();
  while (last < src.length && (m = re.exec(src))) {
    out[m[1]] = m[3] !== undefined ? m[3] : m[2];
    last = re.lastIndex;
  }
  if (src.slice(last).trim()) throw new Error(`cannot read tag filter near "${src.slice(last).trim()}": use key=value pairs separated by spaces`);
  return out;
}

const durRe = /^\d+(\.\d+)?(us|µs|ms|s|m|h)$/;

function searchParams(q) {
  return {
    service: q.get('service') || '',
    operation: q.get('operation') || '',
    tags: q.get('tags') || '',
    minDuration: q.get('minDuration') || '',
    maxDuration: q.get('maxDuration') || '',
    errors: q.get('errors') === '1',
    lookback: lookbacks[q.get('lookback')] ? q.get('lookback') : '1h',
    end: q.get('end') || '',
    limit: q.get('limit') || '20',
    sort: sorts[q.get('sort')] ? q.get('sort') : 'newest', // old links say sort=recent: newest
  };
}

// pickerServices merges the trace store's services with the services the
// RED table knows (unmeshed ones are searchable as the peer of client
// spans) and the one in the URL, so a link never opens an empty picker.
function pickerServices(traceServices, meshRows, current) {
  const m = new Map(traceServices.map((s) => [s, '']));
  for (const r of meshRows) {
    const name = r.service;
    if (!name) continue;
    const unmeshed = r.kind === 'unmeshed' || r.meshed === false;
    if (unmeshed) m.set(name, 'unmeshed');
    else if (!m.has(name)) m.set(name, '');
  }
  if (current && !m.has(current)) m.set(current, '');
  return [...m].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([name, mark]) => ({ name, mark }));
}

export function TracesPage({ query }) {
  const p = searchParams(query);
  const [traceServices, setTraceServices] = useState([]);
  const [meshRows, setMeshRows] = useState([]);
  const [ops, setOps] = useState([]);
  const [form, setForm] = useState(p);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [formError, setFormError] = useState(null);
  const qkey = query.toString();
  useEffect(() => setForm(p), [qkey]);
  useEffect(() => {
    getJSON('/jaeger/api/services').then((b) => setTraceServices(b.data || [])).catch((e) => setError(e.message));
    getJSON('/api/mesh/services?window=1h').then((b) => setMeshRows(b.services || [])).catch(() => {}); // only adds marks
  }, []);
  const services = pickerServices(traceServices, meshRows, p.service);
  useEffect(() => {
    if (!form.service) return setOps([]);
    getJSON(`/jaeger/api/services/${encodeURIComponent(form.service)}/operations`)
      .then((b) => setOps((b.data || []).map((o) => (typeof o === 'string' ? o : o.name)).filter(Boolean).sort()))
      .catch(() => setOps([]));
  }, [form.service]);
  useEffect(() => {
    if (!p.service) return setResult(null);
    const ac = new AbortController();
    let tags;
    try {
      tags = parseTags(p.tags);
    } catch (e) {
      setError(e.message);
      return;
    }
    if (p.errors) tags.error = 'true';
    setResult(null);
    setError(null);
    getJSON(searchURL(p, tags), { signal: ac.signal })
      .then((b) => setResult(b.traces || []))
      .catch((e) => e.name !== 'AbortError' && setError(e.message));
    return () => ac.abort();
  }, [qkey]);

  const submit = (e) => {
    e.preventDefault();
    for (const k of ['minDuration', 'maxDuration']) {
      if (form[k] && !durRe.test(form[k])) return setFormError(`${k} "${form[k]}" is not a duration such as 250ms, 1.5s or 500us`);
    }
    try {
      parseTags(form.tags);
    } catch (err) {
      return setFormError(err.message);
    }
    if (!form.service) return setFormError('pick a service');
    setFormError(null);
    const q = new URLSearchParams();
    for (const k of ['service', 'operation', 'tags', 'minDuration', 'maxDuration', 'limit', 'end']) if (form[k]) q.set(k, form[k]);
    if (form.errors) q.set('errors', '1');
    if (form.lookback !== '1h') q.set('lookback', form.lookback);
    if (form.sort !== 'newest') q.set('sort', form.sort);
    navigate('/traces?' + q);
  };
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.type === 'checkbox' ? e.target.checked : e.target.value });
  // The server sorted them (over the whole range, before the limit).
  const sorted = result;
  const maxDur = sorted && sorted.length ? Math.max(...sorted.map((t) => t.duration_ms || 0)) || 1 : 1;

  return html`<section class="page traces" aria-labelledby="tr-h">
    <h1 id="tr-h">Traces</h1>
    <div class="traces-layout">
    <form class="search-form" onSubmit=${submit} aria-label="Trace search" data-testid="trace-search">
      <label>Service <select name="service" value=${form.service} onChange=${(e) => setForm({ ...form, service: e.target.value, operation: '' })} required>
        <option value="">choose…</option>${services.map((s) => html`<option value=${s.name}>${s.name}${s.mark ? ` (${s.mark})` : ''}</option>`)}</select></label>
      <label>Operation <select name="operation" value=${form.operation} onChange=${set('operation')}>
        <option value="">all</option>${ops.map((o) => html`<option value=${o}>${o}</option>`)}</select></label>
      <label>Attributes <input name="tags" value=${form.tags} onInput=${set('tags')} placeholder='http.status_code=500 route="/api/x"' /></label>
      <div class="row2">
        <label>Min duration <input name="minDuration" value=${form.minDuration} onInput=${set('minDuration')} placeholder="100ms" size="7" /></label>
        <label>Max duration <input name="maxDuration" value=${form.maxDuration} onInput=${set('maxDuration')} placeholder="2s" size="7" /></label>
      </div>
      <label class="check"><input type="checkbox" name="errors" checked=${form.errors} onChange=${set('errors')} /> Errors only</label>
      <div class="row2">
        <label>Lookback <select name="lookback" value=${form.lookback} onChange=${set('lookback')}>${Object.keys(lookbacks).map((k) => html`<option value=${k}>last ${k}</option>`)}</select></label>
        <label>Limit <input name="limit" type="number" min="1" max="1500" value=${form.limit} onInput=${set('limit')} size="4" /></label>
      </div>
      <label>Sort <select name="sort" value=${form.sort} onChange=${set('sort')}>${Object.entries(sorts).map(([k, v]) => html`<option value=${k}>${v}</option>`)}</select></label>
      ${formError ? html`<p class="error" role="alert">${formError}</p>` : ''}
      <button type="submit" class="primary">Find traces</button>
    </form>
    <div class="results" aria-live="polite">
      ${error ? html`<p class="error" role="alert">${error}</p>` : ''}
      ${!p.service ? html`<p class="muted">Pick a service and search.</p>` : sorted === null && !error ? html`<p class="muted">Searching…</p>` : ''}
      ${sorted ? html`<p class="muted" data-testid="result-count">${sorted.length} trace${sorted.length === 1 ? '' : 's'}</p>
      <ol class="trace-results" data-testid="trace-results">${sorted.map((t) => html`<li key=${t.trace_id} data-trace=${t.trace_id} data-duration-ms=${t.duration_ms}>
        <a href=${'/traces/' + t.trace_id} onClick=${onLinkClick} class="trace-link">
          <span class="tr-name">${t.root_service}: ${t.root_operation}</span>
          <span class="tr-meta">${t.span_count} spans · ${(t.services || []).join(', ')}${t.error_count ? html` · <span class="badge health-failing">✖ ${t.error_count} error${t.error_count > 1 ? 's' : ''}</span>` : ''}</span>
          <span class="tr-time">${fmtTime(t.start)}</span>
          <span class="tr-dur"><span class="dur-bar" style=${{ width: `${Math.max(1, (100 * (t.duration_ms || 0)) / maxDur)}%` }} aria-hidden="true"></span><span class="num">${fmtMs(t.duration_ms)}</span></span>
        </a></li>`)}</ol>` : ''}
    </div></div>
  </section>`;
}

const ROW = 26;

export function TraceView({ params, query }) {
  const id = params.id;
  const [trace, setTrace] = useState(null);
  const [error, setError] = useState(null);
  const [collapsed, setCollapsed] = useState(() => new Set());
  const [scroll, setScroll] = useState({ top: 0, height: 600 });
  const box = useRef(null);
  const selected = query.get('span') || '';
  const showCP = query.get('cp') !== '0';
  useEffect(() => {
    const ac = new AbortController();
    setTrace(null);
    setError(null);
    getJSON('/jaeger/api/traces/' + encodeURIComponent(id), { signal: ac.signal })
      .then((b) => {
        const t = b.data && b.data[0];
        if (!t) throw new Error(`trace ${id} not found`);
        setTrace(t);
      })
      .catch((e) => e.name !== 'AbortError' && setError(e.message));
    return () => ac.abort();
  }, [id]);
  const model = useMemo(() => {
    if (!trace) return null;
    const sum = summarize(trace);
    const { rows } = buildRows(trace);
    return { sum, rows, cp: criticalPath(trace) };
  }, [trace]);
  const visibleRows = useMemo(() => {
    if (!model) return [];
    if (!collapsed.size) return model.rows;
    const out = [];
    let hideBelow = Infinity;
    for (const r of model.rows) {
      if (r.depth > hideBelow) continue;
      hideBelow = Infinity;
      out.push(r);
      if (collapsed.has(r.span.spanID)) hideBelow = r.depth;
    }
    return out;
  }, [model, collapsed]);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const update = () => setScroll({ top: el.scrollTop, height: el.clientHeight });
    update();
    el.addEventListener('scroll', update, { passive: true });
    window.addEventListener('resize', update);
    return () => {
      el.removeEventListener('scroll', update);
      window.removeEventListener('resize', update);
    };
  }, [model]);
  if (error) return html`<section class="page"><h1>Trace ${id}</h1><p class="error" role="alert">${error}</p></section>`;
  if (!model) return html`<section class="page"><h1>Trace ${id}</h1><p class="muted">Loading…</p></section>`;
  const { sum, cp } = model;
  const first = Math.max(0, Math.floor(scroll.top / ROW) - 15);
  const last = Math.min(visibleRows.length, Math.ceil((scroll.top + scroll.height) / ROW) + 15);
  const toggle = (sid) => {
    const c = new Set(collapsed);
    if (c.has(sid)) c.delete(sid);
    else c.add(sid);
    setCollapsed(c);
  };
  const sel = selected && trace.spans.find((s) => s.spanID === selected);
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const onKey = (e, i) => {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const j = Math.max(0, Math.min(visibleRows.length - 1, i + (e.key === 'ArrowDown' ? 1 : -1)));
      setQuery({ span: visibleRows[j].span.spanID }, { replace: true });
      const el = box.current;
      if (j * ROW < el.scrollTop) el.scrollTop = j * ROW;
      else if ((j + 1) * ROW > el.scrollTop + el.clientHeight) el.scrollTop = (j + 1) * ROW - el.clientHeight;
      requestAnimationFrame(() => {
        const b = el.querySelector(`[data-span="${visibleRows[j].span.spanID}"] .span-name`);
        if (b) b.focus();
      });
    }
  };
  return html`<section class="page trace-view" aria-labelledby="tv-h">
    <div class="page-head">
      <h1 id="tv-h">${sum.rootService}: ${sum.rootOperation}</h1>
      <p class="facts"><span>Trace <code>${id}</code></span> <span>${fmtTime(sum.start / 1000)}</span> <span>duration <b>${fmtUs(sum.duration)}</b></span>
        <span data-testid="span-count">${sum.spanCount} spans</span> <span>services: ${[...sum.services.keys()].join(', ')}</span>
        ${sum.errors ? html`<span class="badge health-failing">✖ ${sum.errors} error${sum.errors > 1 ? 's' : ''}</span>` : ''}
        <label class="check"><input type="checkbox" checked=${showCP} onChange=${(e) => setQuery({ cp: e.target.checked ? null : '0' }, { replace: true })} /> Highlight critical path (◆)</label>
        <a href="/traces" onClick=${(e) => { if (history.length > 1) { e.preventDefault(); history.back(); } }}>← back to results</a></p>
    </div>
    <div class="waterfall-layout">
      <div class="waterfall" role="tree" aria-label="Span waterfall" data-testid="waterfall" data-rows=${visibleRows.length}>
        <div class="wf-head" aria-hidden="true"><span class="wf-name">caller → callee, operation (kind)</span><span class="wf-time">${ticks.map((t) => html`<span class="tick" style=${{ left: `${t * 100}%` }}>${fmtUs(t * sum.duration)}</span>`)}</span></div>
        <div class="wf-scroll" ref=${box}>
          <div class="wf-body" style=${{ height: `${visibleRows.length * ROW}px` }}>
            ${visibleRows.slice(first, last).map((r, k) => {
              const i = first + k;
              const s = r.span;
              const left = sum.duration ? ((s.startTime - sum.start) / sum.duration) * 100 : 0;
              const width = sum.duration ? Math.max(0.2, (s.duration / sum.duration) * 100) : 100;
              const err = spanIsError(s);
              const onCP = showCP && cp.has(s.spanID);
              return html`<div key=${s.spanID} role="treeitem" aria-level=${r.depth + 1} aria-selected=${s.spanID === selected ? 'true' : 'false'} aria-expanded=${r.hasChildren ? (collapsed.has(s.spanID) ? 'false' : 'true') : undefined}
                class=${'wf-row' + (s.spanID === selected ? ' selected' : '') + (err ? ' is-error' : '') + (onCP ? ' critical' : '')} style=${{ top: `${i * ROW}px` }} data-span=${s.spanID} data-service=${r.service} data-kind=${r.kind} data-peer=${r.peer}>
                <span class="wf-name" style=${{ paddingLeft: `${4 + r.depth * 14}px` }}>
                  ${r.hasChildren ? html`<button type="button" class="twisty" aria-label=${collapsed.has(s.spanID) ? 'Expand' : 'Collapse'} onClick=${() => toggle(s.spanID)}>${collapsed.has(s.spanID) ? '▸' : '▾'}</button>` : html`<span class="twisty-pad"></span>`}
                  <button type="button" class="span-name" onClick=${() => setQuery({ span: s.spanID === selected ? null : s.spanID }, { replace: true })} onKeyDown=${(e) => onKey(e, i)}>
                    ${err ? html`<span class="err-glyph" title="error">✖ </span>` : ''}${onCP ? html`<span class="cp-glyph" title="on the critical path">◆ </span>` : ''}<${SpanTitle} r=${r} /></button></span>
                <span class="wf-time"><span class="wf-bar" style=${{ left: `${left}%`, width: `${width}%` }}></span><span class=${'wf-dur' + (left + width > 85 ? ' inside' : '')} style=${left + width > 85 ? { left: `${left}%` } : { left: `${left + width}%` }}>${fmtUs(s.duration)}</span></span>
              </div>`;
            })}
          </div>
        </div>
      </div>
      ${sel ? html`<${SpanDetails} span=${sel} trace=${trace} start=${sum.start} onClose=${() => setQuery({ span: null }, { replace: true })} />` : ''}
    </div>
  </section>`;
}

// SpanTitle names a waterfall row: caller → callee (the row's own service
// in bold), the operation and the span kind, e.g. "web → cart GET /cart
// (client)".
function SpanTitle({ r }) {
  const op = r.span.operationName;
  const kind = r.kind ? html` <span class="wf-kind">(${r.kind})</span>` : '';
  if (r.peer && (r.kind === 'client' || r.kind === 'producer')) return html`<b>${r.service}</b> → ${r.peer} ${op}${kind}`;
  if (r.peer) return html`${r.peer} → <b>${r.service}</b> ${op}${kind}`;
  return html`<b>${r.service}</b> ${op}${kind}`;
}

function SpanDetails({ span, trace, start, onClose }) {
  const proc = (trace.processes && trace.processes[span.processID]) || {};
  const status = tagValue(span.tags, 'otel.status_code') || (spanIsError(span) ? 'ERROR' : 'UNSET');
  const statusMsg = tagValue(span.tags, 'otel.status_description');
  return html`<aside class="span-details" aria-label="Span details" data-testid="span-details">
    <button type="button" class="close" onClick=${onClose} aria-label="Close span details">✕</button>
    <h2>${proc.serviceName}: ${span.operationName}</h2>
    <dl class="kv">
      <dt>Span</dt><dd><code>${span.spanID}</code></dd>
      <dt>Parent</dt><dd><code>${parentOf(span) || '(root)'}</code></dd>
      <dt>Kind</dt><dd>${tagValue(span.tags, 'span.kind') || '–'}</dd>
      <dt>Status</dt><dd>${status === 'ERROR' ? html`<span class="badge health-failing">✖ ERROR</span>` : status}${statusMsg ? ` — ${statusMsg}` : ''}</dd>
      <dt>Start</dt><dd>+${fmtUs(span.startTime - start)}</dd>
      <dt>Duration</dt><dd>${fmtUs(span.duration)}</dd>
    </dl>
    <h3>Attributes</h3>
    <table class="data compact kv-table"><tbody>${(span.tags || []).map((t) => html`<tr><th scope="row">${t.key}</th><td>${String(t.value)}</td></tr>`)}</tbody></table>
    <h3>Events</h3>
    ${(span.logs || []).length ? html`<ul class="events">${span.logs.map((l) => html`<li><span class="muted">+${fmtUs(l.timestamp - start)}</span> ${(l.fields || []).map((f) => html`<span class="tag">${f.key}=${String(f.value)}</span> `)}</li>`)}</ul>` : html`<p class="muted">none</p>`}
    <h3>Process</h3>
    <table class="data compact kv-table"><tbody><tr><th scope="row">service.name</th><td>${proc.serviceName}</td></tr>${(proc.tags || []).map((t) => html`<tr><th scope="row">${t.key}</th><td>${String(t.value)}</td></tr>`)}</tbody></table>
  </aside>`;
}
