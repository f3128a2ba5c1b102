// Time state shared by the pages: a window ending now (live), a window
// ending at `at` (replay), or an absolute range `from`..`to`, all in the
// URL. The APIs take an absolute range as at=<to> and window=<to-from>.
import { html } from './html.js';
import { useEffect, useState } from 'preact/hooks';
import { windows, fmtSpan } from './api.js';
import { setQuery } from './router.js';
import { coverageShort } from './timeparams.js';

export { epochOf, timeParams, apiTime, timeKey, coverageShort } from './timeparams.js';

export function toLocalInput(epoch) {
  if (!epoch) return '';
  const d = new Date(epoch * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
const fromLocalInput = (v) => (v ? Math.floor(new Date(v).getTime() / 1000) : 0);

// TimeControls: the window, the replay time and an absolute range.
export function TimeControls({ t }) {
  const [range, setRange] = useState({ from: toLocalInput(t.from), to: toLocalInput(t.to) });
  const [rangeError, setRangeError] = useState('');
  useEffect(() => setRange({ from: toLocalInput(t.from), to: toLocalInput(t.to) }), [t.from, t.to]);
  const applyRange = () => {
    const from = fromLocalInput(range.from), to = fromLocalInput(range.to);
    if (!from || !to || to <= from) return setRangeError('the range needs a start before its end');
    setRangeError('');
    setQuery({ from, to, at: null, window: null });
  };
  return html`<span class="time-controls">
    <label>Window <select value=${t.absolute ? 'range' : t.window} onChange=${(e) => setQuery({ window: e.target.value === '1m' ? null : e.target.value, from: null, to: null })}>
      ${t.absolute ? html`<option value="range">range (${fmtSpan(t.secs)})</option>` : ''}
      ${windows.map((w) => html`<option value=${w}>${w}</option>`)}</select></label>
    ${t.absolute ? '' : html`<label>Replay at <input type="datetime-local" step="1" value=${toLocalInput(t.at)} onChange=${(e) => setQuery({ at: e.target.value ? new Date(e.target.value).toISOString() : null })} /></label>`}
    <details class="range" open=${t.absolute}><summary>Range</summary>
      <label>From <input type="datetime-local" step="1" name="from" value=${range.from} onInput=${(e) => setRange({ ...range, from: e.target.value })} /></label>
      <label>To <input type="datetime-local" step="1" name="to" value=${range.to} onInput=${(e) => setRange({ ...range, to: e.target.value })} /></label>
      <button type="button" onClick=${applyRange}>Apply range</button>
      ${rangeError ? html`<span class="error" role="alert">${rangeError}</span>` : ''}
    </details>
    ${t.replay ? html`<button type="button" onClick=${() => setQuery({ at: null, from: null, to: null })}>Back to live</button>` : ''}
  </span>`;
}

// CoverageNote says when the data is shorter than the window (see
// coverageShort).
export function CoverageNote({ covered, secs }) {
  if (!coverageShort(covered, secs)) return null;
  const text = covered > 0 ? `data covers only the last ${fmtSpan(covered)} of the ${fmtSpan(secs)} window` : `no data in the ${fmtSpan(secs)} window`;
  return html`<p class="note coverage-note" role="note" data-testid="coverage-note">${text}</p>`;
}
