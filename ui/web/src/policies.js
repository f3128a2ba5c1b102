// Traffic policies in the UI: the policy list of the control plane
// (/api/mesh/v1/policies, one request every 10 s for the whole topology
// page), what the graph draws from it (enforced / observe-only services,
// split edges), and the side panel's policy section with the ejected
// endpoints and the decision counts of mesh_policy_decisions_total.
import { html } from './html.js';
import { useEffect, useState } from 'preact/hooks';
import { QueryBox } from './charts.js';
import { getJSON, promInstant, fmtTime } from './api.js';
import { effectiveMode, splitOf, decisionsQuery, decisionText, groupCounts } from './policymodel.js';

export const POLICY_REFRESH_MS = 10000;

// usePolicies polls the policy list. refresh counts the answers (panels
// refresh their counts with it); error is set when the list is unavailable
// (a server without the control plane answers 404).
export function usePolicies() {
  const [state, setState] = useState({ policies: [], version: 0, refresh: 0, error: null });
  useEffect(() => {
    let ac = new AbortController();
    const load = () => {
      ac = new AbortController();
      getJSON('/api/mesh/v1/policies', { signal: ac.signal })
        .then((b) => setState((s) => ({ policies: (b && b.policies) || [], version: (b && b.version) || 0, refresh: s.refresh + 1, error: null })))
        .catch((e) => e.name !== 'AbortError' && setState((s) => ({ ...s, refresh: s.refresh + 1, error: e.message })));
    };
    load();
    const t = setInterval(load, POLICY_REFRESH_MS);
    return () => {
      clearInterval(t);
      ac.abort();
    };
  }, []);
  return state;
}

function ModeBadge({ doc, proxyMode }) {
  const { mode, from } = effectiveMode(doc, proxyMode);
  return html`<span class=${'badge mode-' + mode} data-testid="policy-mode" title=${from === 'document' ? 'mode set in the document' : "no mode in the document: the proxies' --mode"}>${mode}${from === 'proxy' ? ' (proxy)' : ''}</span>`;
}

function matchText(m) {
  if (!m) return 'every request';
  const parts = [];
  if (m.method) parts.push(m.method);
  if (m.path_prefix) parts.push(`path ${m.path_prefix}*`);
  if (m.path_regex) parts.push(`path ~ ${m.path_regex}`);
  for (const h of m.headers || []) parts.push(h.exact !== undefined && h.exact !== '' ? `${h.name}: ${h.exact}` : `${h.name} ~ ${h.regex}`);
  return parts.join(', ') || 'every request';
}

function Weights({ rule }) {
  return html`<table class="data compact weights"><caption>${matchText(rule.match)}</caption><tbody>
    ${(rule.backends || []).map((b) => html`<tr key=${b.version} data-version=${b.version} data-weight=${b.weight}>
      <td>${b.version}</td><td class="num">${b.weight}%</td>
      <td class="wbar"><span class="bar" aria-hidden="true"><span style=${{ width: b.weight + '%' }}></span></span></td></tr>`)}
  </tbody></table>`;
}

function Facts({ rows }) {
  const shown = rows.filter(([, v]) => v !== undefined && v !== null && v !== '');
  return html`<dl class="pol-facts">${shown.map(([k, v]) => html`<div key=${k}><dt>${k}</dt><dd>${v}</dd></div>`)}</dl>`;
}

function RouteBody({ doc }) {
  const r = doc.retries, f = doc.fault, m = doc.mirror;
  return html`
    ${(doc.rules || []).map((rule, i) => html`<${Weights} key=${i} rule=${rule} />`)}
    <${Facts} rows=${[
      ['timeout', doc.timeout],
      ['retries', r ? `${r.attempts} on ${(r.on || []).join(', ')}${r.per_try_timeout && r.per_try_timeout !== '0s' ? `, ${r.per_try_timeout} per try` : ''}` : ''],
      ['retry budget', r && r.budget ? `${Math.round(r.budget.ratio * 100)}% + ${r.budget.min_per_second}/s` : ''],
      ['mirror', m ? `${m.percent}% to ${m.version}` : ''],
      ['fault delay', f && f.delay ? `${f.delay.duration} on ${f.delay.percent}%` : ''],
      ['fault abort', f && f.abort ? `${f.abort.status} on ${f.abort.percent}%` : ''],
    ]} />`;
}

function EjectedTable({ endpoints }) {
  const ej = endpoints.filter((e) => e.ejected || (e.ejected_by && e.ejected_by.length));
  if (!ej.length) return html`<p class="muted" data-testid="ejected">no endpoint ejected (${endpoints.length} registered)</p>`;
  return html`<table class="data compact" data-testid="ejected"><caption>Ejected endpoints</caption>
    <thead><tr><th scope="col">address</th><th scope="col">version</th><th scope="col">why</th><th scope="col">until</th></tr></thead>
    <tbody>${ej.map((e) => {
      const by = e.ejected_by || [];
      const until = by.map((b) => b.until).filter(Boolean).sort().pop();
      return html`<tr key=${e.address} data-address=${e.address}><td>${e.address}</td><td>${e.version}</td>
        <td>${by.map((b) => `${b.reason || 'ejected'} (by ${b.proxy_id})`).join('; ') || 'ejected'}</td><td>${until ? fmtTime(until) : '–'}</td></tr>`;
    })}</tbody></table>`;
}

function ResilienceBody({ doc, endpoints }) {
  const cb = doc.circuit_breaker, od = doc.outlier_detection, rl = doc.rate_limit, hc = doc.health_check;
  return html`
    <${Facts} rows=${[
      ['load balancer', doc.load_balancer],
      ['breaker', cb ? `${cb.max_requests} requests, ${cb.max_connections} connections, ${cb.max_pending} pending` : ''],
      ['outlier detection', od ? `${od.consecutive_5xx} consecutive 5xx eject for ${od.base_ejection_time} (sweep ${od.interval}, at most ${od.max_ejection_percent}%)` : ''],
      ['rate limit', rl ? `${rl.requests_per_second}/s, burst ${rl.burst}` : ''],
      ['health check', hc ? `GET ${hc.path} every ${hc.interval}, ${hc.unhealthy_threshold} failures` : ''],
    ]} />
    ${od ? endpoints.error ? html`<p class="error" role="alert">${endpoints.error}</p>` : endpoints.list ? html`<${EjectedTable} endpoints=${endpoints.list} />` : html`<p class="muted">loading endpoints…</p>` : ''}`;
}

function Counts({ rows }) {
  if (!rows.length) return html`<p class="muted counts">no decisions in this window</p>`;
  return html`<ul class="counts">${rows.map((r) => html`<li key=${r.decision + r.enforced} data-decision=${r.decision} data-enforced=${String(r.enforced)} data-count=${r.n}>${decisionText(r.decision, r.enforced, r.n)}</li>`)}</ul>`;
}

// PolicySection is the side panel's policies of one service.
export function PolicySection({ service, pol, proxyMode, window, at }) {
  const docs = pol.policies.filter((d) => d.service === service);
  const wantEndpoints = docs.some((d) => d.outlier_detection);
  const [counts, setCounts] = useState({ key: '', by: null, error: null });
  const [endpoints, setEndpoints] = useState({ list: null, error: null });
  const query = decisionsQuery(service, window);
  const key = JSON.stringify([query, at]);
  useEffect(() => {
    if (!docs.length) return undefined;
    const ac = new AbortController();
    promInstant(query, at, { signal: ac.signal })
      .then((v) => setCounts({ key, by: groupCounts(v), error: null }))
      .catch((e) => e.name !== 'AbortError' && setCounts({ key, by: null, error: e.message }));
    return () => ac.abort();
  }, [key, pol.refresh, docs.length > 0]);
  useEffect(() => {
    if (!wantEndpoints) return undefined;
    const ac = new AbortController();
    getJSON('/api/mesh/v1/endpoints?service=' + encodeURIComponent(service), { signal: ac.signal })
      .then((b) => setEndpoints({ list: (b && b.endpoints) || [], error: null }))
      .catch((e) => e.name !== 'AbortError' && setEndpoints({ list: null, error: e.message }));
    return () => ac.abort();
  }, [service, pol.refresh, wantEndpoints]);
  if (pol.error && !pol.policies.length) {
    return html`<div class="panel-section" data-testid="policies"><h3>Policies</h3><p class="muted">policies unavailable: ${pol.error}</p></div>`;
  }
  if (!docs.length) {
    return html`<div class="panel-section" data-testid="policies"><h3>Policies</h3><p class="muted">no traffic policy for ${service}</p></div>`;
  }
  const by = counts.by || new Map();
  const loading = counts.key !== key;
  const known = new Set(docs.map((d) => `${d.kind}/${d.name}`));
  const others = [...by.entries()].filter(([k]) => !known.has(k));
  return html`<div class="panel-section" data-testid="policies" data-loading=${loading ? 'true' : 'false'}>
    <h3>Policies</h3>
    ${counts.error ? html`<p class="error" role="alert">${counts.error}</p>` : ''}
    ${docs.map((d) => html`<div class="policy" key=${d.kind + '/' + d.name} data-policy=${d.kind + '/' + d.name} data-mode=${effectiveMode(d, proxyMode).mode}>
      <h4>${d.kind} <b>${d.name}</b> <${ModeBadge} doc=${d} proxyMode=${proxyMode} />${splitOf(d) ? html` <span class="tag">split ${splitOf(d)}</span>` : ''}</h4>
      ${d.kind === 'Route' ? html`<${RouteBody} doc=${d} />` : d.kind === 'Resilience' ? html`<${ResilienceBody} doc=${d} endpoints=${endpoints} />` : ''}
      ${loading && !counts.by ? html`<p class="muted">loading counts…</p>` : html`<${Counts} rows=${by.get(`${d.kind}/${d.name}`) || []} />`}
    </div>`)}
    ${others.length ? html`<div class="policy" data-policy="other"><h4>Earlier policies</h4>${others.map(([k, rows]) => html`<p key=${k}>${k}</p><${Counts} rows=${rows} />`)}</div>` : ''}
    <p class="muted">Counts over the last ${window} from the proxies' decisions.</p>
    <${QueryBox} queries=${[query]} label="Policy decisions" kind="PromQL" />
  </div>`;
}
