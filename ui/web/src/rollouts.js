// Rollout pages: the list of rollouts (state, progress through the steps,
// last verdict) and one rollout's detail (weight over time, canary vs stable
// per interval, the judgement table with p-values and effects, the
// canary's failing traces, and the operator controls), from
// /api/mesh/v1/rollouts[/{name}] (docs/rollouts.md).
import { html } from './html.js';
import { useState } from 'preact/hooks';
import { sendJSON, fmtTime } from './api.js';
import { usePoll } from './poll.js';
import { Mutating } from './auth.js';
import { onLinkClick } from './router.js';

const finished = (phase) => phase === 'promoted' || phase === 'rolled_back' || phase === 'aborted';

export function PhaseBadge({ phase }) {
  const cls = phase === 'promoted' ? 'healthy' : phase === 'rolled_back' || phase === 'aborted' ? 'failing' : phase === 'paused' ? 'degraded' : 'no_data';
  return html`<span class=${'badge health-' + cls} data-phase=${phase}>${phase.replace('_', ' ')}</span>`;
}

// Steps shows the step weights with the current one marked.
export function Steps({ steps, step, phase }) {
  return html`<ol class="rollout-steps" aria-label="steps">${steps.map((w, i) => {
    const state = phase === 'promoted' || i < step ? 'done' : i === step && !finished(phase) ? 'current' : 'todo';
    return html`<li data-step-state=${state} aria-current=${state === 'current' ? 'step' : undefined}>${w} %</li>`;
  })}</ol>`;
}

export function RolloutsPage() {
  const [list, error] = usePoll('/api/mesh/v1/rollouts', 5000);
  const rows = list ? list.rollouts : [];
  return html`<section class="page rollouts" aria-labelledby="ro-h">
    <div class="page-head"><h1 id="ro-h">Rollouts</h1><span class="muted">${list ? 'refreshed every 5 s' : ''}</span></div>
    ${error ? html`<p class="error" role="alert">${error}</p>` : ''}
    ${!list && !error ? html`<p class="muted">Loading…</p>` : ''}
    ${list && rows.length === 0 ? html`<p class="muted">No rollouts. Start one with <code>meshscope rollout start -f FILE</code> (docs/rollouts.md).</p>` : ''}
    ${rows.length ? html`<div class="table-wrap"><table class="data" data-testid="rollouts-table">
      <caption class="sr-only">Rollouts with their progress and last verdict.</caption>
      <thead><tr><th scope="col">Rollout</th><th scope="col">Service</th><th scope="col">Stable → canary</th><th scope="col">State</th>
        <th scope="col">Steps</th><th scope="col" class="num">Canary</th><th scope="col" class="num">Failures</th><th scope="col">Last interval</th></tr></thead>
      <tbody>${rows.map((r) => html`<tr key=${r.name} data-rollout=${r.name}>
        <th scope="row"><a href=${'/rollouts/' + encodeURIComponent(r.name)} onClick=${onLinkClick}>${r.name}</a></th>
        <td>${r.service}</td><td>${r.stable} → ${r.canary}</td><td><${PhaseBadge} phase=${r.phase} /></td>
        <td><${Steps} steps=${r.steps} step=${r.step} phase=${r.phase} /></td>
        <td class="num" data-testid="weight">${r.weight} %</td><td class="num">${r.failures} / ${r.failure_limit}</td>
        <td>${r.last ? `${r.last.result.verdict}, score ${r.last.result.score.toFixed(0)}` : '–'}${r.held ? html`<div class="muted small">${r.held}</div>` : ''}</td></tr>`)}</tbody>
    </table></div>` : ''}
  </section>`;
}

// LineChart draws series of [x, y] points as an SVG (x: time).
export function LineChart({ title, series, unit, testid, step }) {
  const pts = series.flatMap((s) => s.points);
  if (pts.length === 0) return html`<figure class="rollout-chart" data-testid=${testid}><figcaption>${title}</figcaption><p class="muted">no intervals yet</p></figure>`;
  const W = 320, H = 120, P = 4;
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const y0 = Math.min(0, ...ys), y1 = Math.max(...ys, y0 + 1e-9);
  const sx = (x) => P + ((x - x0) / (x1 - x0)) * (W - 2 * P);
  const sy = (y) => H - P - ((y - y0) / (y1 - y0)) * (H - 2 * P);
  const path = (points) => points.map((p, i) => {
    if (!step || i === 0) return (i ? 'L' : 'M') + sx(p[0]).toFixed(1) + ',' + sy(p[1]).toFixed(1);
    return 'H' + sx(p[0]).toFixed(1) + 'V' + sy(p[1]).toFixed(1);
  }).join('');
  const fmt = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(1) : v.toPrecision(2));
  return html`<figure class="rollout-chart" data-testid=${testid}><figcaption>${title}</figcaption>
    <svg viewBox=${`0 0 ${W} ${H}`} role="img" aria-label=${title}>
      <line x1=${P} x2=${W - P} y1=${sy(y0)} y2=${sy(y0)} class="axis" />
      ${series.map((s, i) => html`<path d=${path(s.points)} class=${'line line-' + i} fill="none" data-series=${s.label} />`)}
    </svg>
    <div class="legend small">${series.map((s, i) => html`<span class=${'key key-' + i}>${s.label}</span> `)}
      <span class="muted">${fmt(y0)}–${fmt(y1)} ${unit}</span></div></figure>`;
}

const num = (v, f) => (v === null || v === undefined ? '–' : f(v));

export function RolloutView({ params }) {
  const name = params.name;
  const [bump, setBump] = useState(0);
  const [s, error] = usePoll('/api/mesh/v1/rollouts/' + encodeURIComponent(name), 5000, bump);
  const [actErr, setActErr] = useState(null);
  const act = async (action) => {
    setActErr(null);
    try {
      await sendJSON('POST', `/api/mesh/v1/rollouts/${encodeURIComponent(name)}/${action}`);
    } catch (e) {
      setActErr(e.message);
    }
    setBump((n) => n + 1);
  };
  const ivs = s ? s.intervals : [];
  const t = (iv) => new Date(iv.end).getTime() / 1000;
  const secs = (iv) => Math.max(1e-3, (new Date(iv.end) - new Date(iv.start)) / 1000);
  const pair = (f) => [
    { label: 'canary', points: ivs.filter((iv) => f(iv.result.canary, iv) !== null).map((iv) => [t(iv), f(iv.result.canary, iv)]) },
    { label: 'stable', points: ivs.filter((iv) => f(iv.result.stable, iv) !== null).map((iv) => [t(iv), f(iv.result.stable, iv)]) },
  ];
  const ms = (k) => (f) => (f[k] === null || f[k] === undefined ? null : f[k] * 1000);
  const weights = s ? [{ label: 'canary weight', points: [[new Date(s.started).getTime() / 1000, s.spec.steps[0].weight], ...ivs.map((iv) => [t(iv), iv.weight]), ...(ivs.length ? [[new Date(s.updated).getTime() / 1000, s.weight]] : [])] }] : [];
  const last = ivs.length ? ivs[ivs.length - 1] : null;
  const traces = s ? `/traces?service=${encodeURIComponent(s.service)}&tags=${encodeURIComponent('service.version=' + s.canary)}&errors=1` : '';
  return html`<section class="page rollout" aria-labelledby="ro-d-h">
    <div class="page-head"><h1 id="ro-d-h">Rollout ${name}</h1>${s ? html` <${PhaseBadge} phase=${s.phase} />` : ''}
      <a href="/rollouts" onClick=${onLinkClick}>all rollouts</a></div>
    ${error ? html`<p class="error" role="alert">${error}</p>` : ''}
    ${!s && !error ? html`<p class="muted">Loading…</p>` : ''}
    ${s ? html`<div data-testid="rollout-detail">
      <p><strong>${s.service}</strong>: ${s.stable} → ${s.canary}, canary at <strong data-testid="rollout-weight">${s.weight} %</strong>, interval ${s.spec.interval}, failures ${s.failures} of ${s.spec.failure_limit}.</p>
      <${Steps} steps=${s.spec.steps.map((x) => x.weight)} step=${s.step} phase=${s.phase} />
      ${s.held ? html`<p class="muted" data-testid="rollout-held">Held: ${s.held}</p>` : ''}
      <div class="controls" role="group" aria-label="rollout controls">
        <${Mutating}>
        ${s.phase === 'paused'
          ? html`<button type="button" onClick=${() => act('resume')}>Resume</button>`
          : html`<button type="button" disabled=${finished(s.phase)} onClick=${() => act('pause')}>Pause</button>`}
        <button type="button" disabled=${finished(s.phase)} onClick=${() => confirm(`Promote ${s.canary} to 100 %?`) && act('promote')}>Promote</button>
        <button type="button" class="danger" disabled=${finished(s.phase)} onClick=${() => confirm(`Abort and send 100 % to ${s.stable}?`) && act('abort')}>Abort</button>
        <//>
        <a data-testid="rollout-traces" href=${traces} onClick=${onLinkClick}>Failing traces of ${s.canary}</a>
      </div>
      ${actErr ? html`<p class="error" role="alert">${actErr}</p>` : ''}
      <div class="charts rollout-charts" data-testid="rollout-charts">
        <${LineChart} title="Canary weight" unit="%" series=${weights} step=${true} testid="chart-weight" />
        <${LineChart} title="Success rate" unit="%" series=${pair((f) => f.success_rate)} testid="chart-success" />
        <${LineChart} title="p50 latency" unit="ms" series=${pair(ms('p50'))} testid="chart-p50" />
        <${LineChart} title="p99 latency" unit="ms" series=${pair(ms('p99'))} testid="chart-p99" />
        <${LineChart} title="Request rate" unit="rps" series=${pair((f, iv) => f.requests / secs(iv))} testid="chart-rps" />
      </div>
      ${last ? html`<h2>Last interval: ${last.result.verdict}, score ${last.result.score.toFixed(1)}</h2>
      <p class="muted">${last.result.reason}; latency from ${last.result.latency_source}.</p>
      <table class="data compact" data-testid="rollout-metrics"><thead><tr><th scope="col">Metric</th><th scope="col">Verdict</th><th scope="col" class="num">Canary</th>
        <th scope="col" class="num">Stable</th><th scope="col" class="num">Limit</th><th scope="col" class="num">p</th><th scope="col" class="num">Effect</th><th scope="col">Test</th><th scope="col">Why</th></tr></thead>
        <tbody>${last.result.metrics.map((m) => html`<tr data-metric=${m.name} data-verdict=${m.verdict}><td>${m.name}</td><td>${m.verdict}</td>
          <td class="num">${m.canary.toPrecision(4)}</td><td class="num">${num(m.stable, (v) => v.toPrecision(4))}</td><td class="num">${num(m.limit, (v) => v.toPrecision(4))}</td>
          <td class="num">${num(m.p, (v) => v.toPrecision(3))}</td><td class="num">${num(m.effect, (v) => (v >= 0 ? '+' : '') + v.toFixed(2))}</td><td>${m.test || ''}</td><td class="small">${m.reason}</td></tr>`)}</tbody></table>` : ''}
      <h2>Intervals</h2>
      ${ivs.length === 0 ? html`<p class="muted">No interval judged yet.</p>` : html`<table class="data compact" data-testid="rollout-intervals"><thead><tr><th scope="col">End</th><th scope="col" class="num">Step</th>
        <th scope="col" class="num">Canary</th><th scope="col">Verdict</th><th scope="col" class="num">Score</th><th scope="col" class="num">Requests c / s</th><th scope="col" class="num">Errors c / s</th><th scope="col">Latency from</th><th scope="col">Action</th></tr></thead>
        <tbody>${ivs.slice().reverse().map((iv) => html`<tr data-action=${iv.action}><td>${fmtTime(iv.end)}</td><td class="num">${iv.step + 1}</td><td class="num">${iv.weight} %</td>
          <td>${iv.result.verdict}</td><td class="num">${iv.result.score.toFixed(1)}</td><td class="num">${iv.result.canary.requests} / ${iv.result.stable.requests}</td>
          <td class="num">${iv.result.canary.errors} / ${iv.result.stable.errors}</td><td>${iv.result.latency_source}</td><td>${iv.action.replace('_', ' ')}</td></tr>`)}</tbody></table>`}
      <h2>Events</h2>
      <ul class="rollout-events" data-testid="rollout-events">${s.events.slice().reverse().map((e) => html`<li data-type=${e.type}><time>${fmtTime(e.time)}</time> <strong>${e.type.replace('_', ' ')}</strong> ${e.message}${e.who ? html` <span class="muted">(${e.who})</span>` : ''}</li>`)}</ul>
    </div>` : ''}
  </section>`;
}
