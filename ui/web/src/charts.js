// Time-series charts (uPlot) fed by PromQL range queries.
import { html } from './html.js';
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { promRange, windowToSeconds } from './api.js';

const palette = ['#1f6feb', '#c62828', '#b35900', '#6f42c1', '#1a7f37'];
const dashes = [[], [6, 3], [2, 2], [8, 2, 2, 2], [1, 3]];

// RangeChart draws one or more PromQL queries over the last `window` (or the
// window ending at `at`, epoch seconds). series: [{label, query, scale}]
// where scale multiplies each value (e.g. 1000 for seconds → ms, 100 for %).
export function RangeChart({ title, unit, series, window, at, testid }) {
  const box = useRef(null);
  const [state, setState] = useState({ loading: true, error: null, empty: false });
  const key = JSON.stringify([series, window, at]);
  useEffect(() => {
    const ac = new AbortController();
    let plot = null;
    const secs = windowToSeconds(window);
    const end = at ? Number(at) : Math.floor(Date.now() / 1000);
    const start = end - secs;
    const step = Math.max(1, Math.floor(secs / 60));
    setState({ loading: true, error: null, empty: false });
    Promise.all(series.map((s) => promRange(s.query, start, end, step, { signal: ac.signal })))
      .then((results) => {
        const xs = [];
        for (let t = start; t <= end; t += step) xs.push(t);
        const idx = new Map(xs.map((t, i) => [t, i]));
        const data = [xs];
        const sers = [{}];
        let any = false;
        results.forEach((res, i) => {
          const ys = new Array(xs.length).fill(null);
          // Each query is aggregated to one series; take the first.
          const r = res[0];
          if (r) {
            for (const [t, v] of r.values || []) {
              const k = idx.get(Math.round(Number(t)));
              const f = parseFloat(v);
              if (k !== undefined && isFinite(f)) {
                ys[k] = f * (series[i].scale || 1);
                any = true;
              }
            }
          }
          data.push(ys);
          sers.push({ label: series[i].label, stroke: palette[i % palette.length], dash: dashes[i % dashes.length], width: 1.5, spanGaps: false, value: (u, v) => (v == null ? '–' : v.toFixed(2) + (unit ? ' ' + unit : '')) });
        });
        setState({ loading: false, error: null, empty: !any });
        if (!box.current) return;
        box.current.innerHTML = '';
        const width = Math.max(240, box.current.clientWidth || 320);
        plot = new uPlot({
          width,
          height: 140,
          series: sers,
          scales: { x: { time: true } },
          axes: [{ stroke: '#444', grid: { stroke: '#eee' } }, { stroke: '#444', grid: { stroke: '#eee' }, size: 56 }],
          legend: { live: true },
          cursor: { drag: { x: false, y: false } },
        }, data, box.current);
      })
      .catch((e) => {
        if (e.name !== 'AbortError') setState({ loading: false, error: e.message, empty: false });
      });
    return () => {
      ac.abort();
      if (plot) plot.destroy();
    };
  }, [key]);
  return html`<figure class="chart" data-testid=${testid} aria-label=${title}>
    <figcaption>${title}${unit ? html` <span class="muted">(${unit})</span>` : ''}
      ${state.loading ? html` <span class="muted">loading…</span>` : ''}
      ${state.empty ? html` <span class="muted">no data in this window</span>` : ''}</figcaption>
    ${state.error ? html`<p class="error" role="alert">${state.error}</p>` : ''}
    <div ref=${box} class="chart-plot"></div>
    <${QueryBox} queries=${series.map((s) => s.query)} label=${title} />
  </figure>`;
}

// QueryBox shows the query behind a panel (PromQL, or the native API
// request of a table) and copies it, one query a line.
export function QueryBox({ queries, label, kind = 'PromQL' }) {
  const [copied, setCopied] = useState('');
  const text = queries.join('\n');
  const pre = useRef(null);
  const copy = () => {
    const done = () => setCopied('copied');
    const fallback = () => {
      // No clipboard (insecure origin, permission): select the text.
      pre.current.parentElement.open = true;
      const r = document.createRange();
      r.selectNodeContents(pre.current);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(r);
      setCopied(document.execCommand && document.execCommand('copy') ? 'copied' : 'selected: press Ctrl+C');
    };
    if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(text).then(done, fallback);
    else fallback();
  };
  return html`<div class="promql" data-testid="promql">
    <button type="button" class="copy" onClick=${copy} aria-label=${'copy query of ' + label}>copy query</button>
    <span class="muted" role="status">${copied}</span>
    <details><summary>${kind}</summary><pre ref=${pre} data-testid="promql-text">${text}</pre></details>
  </div>`;
}
