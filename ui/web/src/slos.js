// SLO pages: a sortable list of every SLO (objective, SLI, error budget
// left as a bar, fastest page burn rate, alert state) and one SLO's detail
// (budget, every burn-rate row against its threshold, active alerts, the
// failing traces), from GET /api/mesh/v1/slos[/{name}] (docs/slo.md).
import { html } from './html.js';
import { fmtTime, promString } from './api.js';
import { usePoll } from './poll.js';
import { RangeChart } from './charts.js';
import { GuardsSection } from './guards.js';
import { setQuery, onLinkClick } from './router.js';

const stateOrder = { error: 4, firing: 3, pending: 2, ok: 1, no_data: 0 };
const num = (v) => (v === null || v === undefined ? -Infinity : v);
const columns = [
  { key: 'name', label: 'SLO', get: (s) => s.name, text: true },
  { key: 'service', label: 'Service', get: (s) => s.service, text: true },
  { key: 'objective', label: 'Objective', get: (s) => s.objective, num: true },
  { key: 'sli', label: 'SLI', get: (s) => num(s.sli), num: true },
  { key: 'budget', label: 'Budget left', get: (s) => num(s.error_budget.remaining_percent), num: true },
  { key: 'burn', label: 'Page burn', get: (s) => num(pageBurn(s)), num: true },
  { key: 'state', label: 'State', get: (s) => (stateOrder[s.state] || 0) * 10 + (s.firing_severity === 'page' ? 1 : 0) },
];

// pageBurn is the short-window burn rate of the fastest page row.
function pageBurn(s) {
  const b = (s.burn_rates || []).find((r) => r.severity === 'page');
  return b ? b.short_burn_rate : null;
}

const pct = (v, d = 3) => (v === null || v === undefined ? '–' : v.toFixed(d) + ' %');
const burn = (v) => (v === null || v === undefined ? '–' : v.toFixed(1) + '×');

export function StateBadge({ s }) {
  const cls = s.state === 'firing' ? 'failing' : s.state === 'pending' || s.state === 'error' ? 'degraded' : s.state === 'ok' ? 'healthy' : 'no_data';
  const text = s.state === 'firing' ? `firing: ${s.firing_severity}` : s.state.replace('_', ' ');
  return html`<span class=${'badge health-' + cls} data-state=${s.state}>${text}</span>`;
}

export function BudgetBar({ b }) {
  const left = b.remaining_percent;
  if (left === null || left === undefined) return html`<span class="muted">no data</span>`;
  const w = Math.max(0, Math.min(100, left));
  const color = left <= 0 ? 'var(--bad)' : left < 25 ? 'var(--warn)' : 'var(--ok)';
  return html`<span class="budget"><span class="bar" role="img" aria-label=${`${left.toFixed(1)} % of the error budget left`}><span style=${`width:${w}%;background:${color}`}></span></span> ${left.toFixed(1)} %</span>`;
}

export function SlosPage({ query }) {
  const sortKey = columns.some((c) => c.key === query.get('sort')) ? query.get('sort') : 'state';
  const col = columns.find((c) => c.key === sortKey);
  const dir = query.get('dir') === 'asc' ? 'asc' : query.get('dir') === 'desc' ? 'desc' : col.text ? 'asc' : 'desc';
  const [list, error] = usePoll('/api/mesh/v1/slos');
  const rows = list ? list.slos.slice() : [];
  rows.sort((a, b) => {
    const x = col.get(a), y = col.get(b);
    const c = x < y ? -1 : x > y ? 1 : a.name < b.name ? -1 : 1;
    return dir === 'asc' ? c : -c;
  });
  const sortBy = (k) => setQuery({ sort: k, dir: k === sortKey ? (dir === 'asc' ? 'desc' : 'asc') : null });
  return html`<section class="page slos" aria-labelledby="slo-h">
    <div class="page-head"><h1 id="slo-h">SLOs</h1>
      <span class="muted">${list ? `policy version ${list.version}, refreshed every 10 s` : ''}</span></div>
    ${error ? html`<p class="error" role="alert">${error}</p>` : ''}
    ${!list && !error ? html`<p class="muted">Loading…</p>` : ''}
    ${list && rows.length === 0 ? html`<p class="muted">No SLOs. Apply a <code>kind: SLO</code> document (docs/slo.md).</p>` : ''}
    ${rows.length ? html`<div class="table-wrap"><table class="data sortable" data-testid="slos-table">
      <caption class="sr-only">Service-level objectives; column headers sort.</caption>
      <thead><tr>${columns.map((c) => html`<th scope="col" class=${c.num ? 'num' : ''} aria-sort=${c.key === sortKey ? (dir === 'asc' ? 'ascending' : 'descending') : 'none'}>
        <button type="button" class="sort" onClick=${() => sortBy(c.key)}>${c.label}${c.key === sortKey ? (dir === 'asc' ? ' ▲' : ' ▼') : ''}</button></th>`)}</tr></thead>
      <tbody>${rows.map((s) => html`<tr key=${s.name} data-slo=${s.name} data-sort-value=${col.get(s)}>
        <th scope="row"><a href=${'/slos/' + encodeURIComponent(s.name)} onClick=${onLinkClick}>${s.name}</a></th>
        <td>${s.service}${s.route ? ' ' + s.route : ''}</td>
        <td class="num">${s.objective} % / ${s.window}</td>
        <td class="num">${pct(s.sli)}</td>
        <td class="num"><${BudgetBar} b=${s.error_budget} /></td>
        <td class="num">${burn(pageBurn(s))}</td>
        <td><${StateBadge} s=${s} /></td></tr>`)}</tbody>
    </table></div>` : ''}
  </section>`;
}

export function SloView({ params }) {
  const name = params.name;
  const [s, error] = usePoll('/api/mesh/v1/slos/' + encodeURIComponent(name));
  return html`<section class="page slo" aria-labelledby="slo-d-h">
    <div class="page-head"><h1 id="slo-d-h">SLO ${name}</h1>${s ? html` <${StateBadge} s=${s} />` : ''}
      <a href="/slos" onClick=${onLinkClick}>all SLOs</a></div>
    ${error ? html`<p class="error" role="alert">${error}</p>` : ''}
    ${!s && !error ? html`<p class="muted">Loading…</p>` : ''}
    ${s ? html`<div data-testid="slo-detail">
      <p>${s.objective} % of <strong>${s.service}</strong>${(s.route ? ' ' + s.route : '') + ' requests ' + (s.indicator.type === 'latency' ? `faster than ${s.indicator.threshold}` : s.indicator.type === 'custom' ? 'good (custom queries)' : 'succeed') + ' over ' + s.window}.</p>
      ${s.error ? html`<p class="error" role="alert">${s.error}</p>` : ''}
      <dl class="kv">
        <dt>SLI over ${s.window}</dt><dd data-testid="slo-sli">${pct(s.sli)}</dd>
        <dt>SLI over ${s.now_window}</dt><dd>${pct(s.sli_now)}</dd>
        <dt>Error budget</dt><dd data-testid="slo-budget"><${BudgetBar} b=${s.error_budget} />
          ${s.error_budget.remaining_minutes !== null ? ` · ${s.error_budget.remaining_minutes.toFixed(1)} of ${s.error_budget.total_minutes.toFixed(1)} min of full outage left` : ''}</dd>
      </dl>
      <h2>Burn rates</h2>
      <table class="data compact" data-testid="burn-table"><thead><tr><th scope="col">Severity</th><th scope="col" class="num">Threshold</th>
        <th scope="col">Long window</th><th scope="col" class="num">Burn</th><th scope="col">Short window</th><th scope="col" class="num">Burn</th><th scope="col">Exceeded</th></tr></thead>
        <tbody>${s.burn_rates.map((b) => html`<tr data-exceeded=${String(b.exceeded)}><td>${b.severity}</td><td class="num">${b.factor}× (${b.budget_percent} % of the budget)</td>
          <td>${b.long_window}</td><td class="num">${burn(b.long_burn_rate)}</td><td>${b.short_window}</td><td class="num">${burn(b.short_burn_rate)}</td>
          <td>${b.exceeded ? html`<strong>yes</strong>` : 'no'}</td></tr>`)}</tbody></table>
      <${BurnCharts} s=${s} />
      <h2>Alerts</h2>
      ${s.alerts.length === 0 ? html`<p class="muted">No active alert.</p>` : html`<ul data-testid="slo-alerts">${s.alerts.map((a) => html`<li>${a.severity} ${a.state} since ${fmtTime(a.active_at)}</li>`)}</ul>`}
      <${GuardsSection} service=${s.service} slo=${s.name} title="Guards on this SLO" />
      <p><a data-testid="slo-traces" href=${s.traces.ui.replace(/^https?:\/\/[^/]+/, '')} onClick=${onLinkClick}>Failing traces of ${s.service}${s.route ? ' ' + s.route : ''}</a></p>
    </div>` : ''}
  </section>`;
}

// BurnCharts draws, over the last hour, the burn rate of each page row's
// windows with the row's factor as a line, and the number of firing
// alerts of the SLO (its alert timeline), from the recorded series.
function BurnCharts({ s }) {
  const sel = (metric) => `${metric}{slo=${promString(s.name)}}`;
  const budget = s.error_budget.ratio;
  const charts = s.burn_rates.filter((b) => b.severity === 'page').map((b) => ({
    title: `Burn rate, page ${b.long_window}/${b.short_window} (fires above ${b.factor}×)`,
    testid: `burn-chart-${b.long_window}`,
    series: [
      { label: b.short_window, query: sel('slo:sli_error:ratio_rate' + b.short_window), scale: 1 / budget },
      { label: b.long_window, query: sel('slo:sli_error:ratio_rate' + b.long_window), scale: 1 / budget },
      { label: `${b.factor}×`, query: `vector(${b.factor})` },
    ],
  }));
  const alerts = [
    { label: 'page', query: `count(ALERTS{slo=${promString(s.name)},alertstate="firing",severity="page"}) or vector(0)` },
    { label: 'ticket', query: `count(ALERTS{slo=${promString(s.name)},alertstate="firing",severity="ticket"}) or vector(0)` },
  ];
  return html`<h2>Last hour</h2><div class="charts" data-testid="slo-charts">
    ${charts.map((c) => html`<${RangeChart} title=${c.title} unit="×" series=${c.series} window="1h" testid=${c.testid} />`)}
    <${RangeChart} title="Firing alerts" unit="" series=${alerts} window="1h" testid="alert-timeline" />
  </div>`;
}
