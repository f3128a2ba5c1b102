// Guards in the UI (docs/guards.md): on the SLO detail and in the
// topology side panel, the guards of a service (or of one SLO) with the
// state the guard controller computed (GET /api/mesh/v1/guards), their
// event timeline (GET /api/mesh/v1/events: what was done or would have
// been done, when, why with the burn rates at the time, dry-run or
// enforced, who), and the operator buttons (pause, resume, revert,
// promote; POST /api/mesh/v1/guards/{name}/{op}). Nothing here derives a
// state: the server's view is shown as it is.
import { html } from './html.js';
import { useState } from 'preact/hooks';
import { sendJSON, fmtTime, parseDurationSeconds } from './api.js';
import { usePoll } from './poll.js';
import { Mutating } from './auth.js';

export const GUARD_REFRESH_MS = 5000;

// The words and colour of each state of control/guard (View.State).
const stateInfo = {
  armed: { word: 'armed', cls: 'healthy' },
  paused: { word: 'paused', cls: 'no_data' },
  'triggered-dry-run': { word: 'triggered (dry-run)', cls: 'degraded' },
  acting: { word: 'acting', cls: 'failing' },
  'cooling-down': { word: 'cooling down', cls: 'degraded' },
};

export function GuardStateBadge({ state }) {
  const i = stateInfo[state] || { word: state, cls: 'no_data' };
  return html`<span class=${'badge health-' + i.cls} data-guard-state=${state}>${i.word}</span>`;
}

// The words of each event kind (control/guard Event.Kind).
const kindWords = {
  'would-act': 'would have acted', acted: 'acted', 'would-revert': 'would have reverted', reverted: 'reverted',
  skipped: 'did not act', failed: 'failed', paused: 'paused', resumed: 'resumed', promoted: 'promoted',
};

// burnText lists an event's burn rates by window, shortest first: "5m 20.1× · 1h 15.3×".
function burnText(rates) {
  return Object.entries(rates || {}).sort((a, b) => parseDurationSeconds(a[0]) - parseDurationSeconds(b[0])).map(([w, v]) => `${w} ${v.toFixed(1)}×`).join(' · ');
}

// The events that are decisions on traffic (tagged enforced or dry-run).
const decisions = new Set(['would-act', 'acted', 'would-revert', 'reverted', 'skipped', 'failed']);

function EventItem({ e }) {
  const c = e.condition;
  return html`<li data-kind=${e.kind} data-mode=${e.mode} data-seq=${e.seq}>
    <time datetime=${e.time}>${fmtTime(e.time)}</time> <strong>${kindWords[e.kind] || e.kind}</strong>${' '}${decisions.has(e.kind) ? html`<span class=${'tag mode-' + (e.mode === 'enforce' ? 'enforce' : 'observe')}>${e.mode === 'enforce' ? 'enforced' : 'dry-run'}</span> ` : ''}${e.summary}${e.version ? html` <span class="muted">(policy v${e.version})</span>` : ''}
    ${c ? html`<div class="small why" data-testid="guard-why">why: ${c.alert}${c.labels && c.labels.severity ? ` (${c.labels.severity})` : ''} firing since ${fmtTime(c.active_at)}${c.burn_rates ? html`; burn rate <span data-testid="burn-rates">${burnText(c.burn_rates)}</span>` : ''}</div>` : ''}
    <div class="small muted">by ${e.who}</div>
  </li>`;
}

function GuardCard({ g, events, onDone }) {
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  const op = async (name, question) => {
    if (question && !confirm(question)) return;
    setErr(null);
    setBusy(true);
    try {
      await sendJSON('POST', `/api/mesh/v1/guards/${encodeURIComponent(g.name)}/${name}`);
    } catch (e) {
      setErr(e.message);
    }
    setBusy(false);
    onDone();
  };
  const a = g.action;
  return html`<div class="guard" data-guard=${g.name} data-state=${g.state} data-mode=${g.mode}>
    <h4>Guard <b>${g.name}</b> <${GuardStateBadge} state=${g.state} /> <span class=${'badge mode-' + (g.mode === 'enforce' ? 'enforce' : 'observe')} data-testid="guard-mode">${g.mode}</span></h4>
    <p class="small">When ${g.when}: ${g.then.join('; ')}.</p>
    ${a ? html`<p data-testid="guard-action">${a.dry_run ? html`<b>Would have:</b> ` : html`<b>Acting</b> since ${fmtTime(a.started)}: `}${a.summary}${a.version ? ` (policy v${a.version})` : ''}</p>` : ''}
    ${g.cooldown_until ? html`<p class="muted small" data-testid="guard-cooldown">no new action before ${fmtTime(g.cooldown_until)}</p>` : ''}
    ${g.error ? html`<p class="error" role="alert">${g.error}</p>` : ''}
    <${Mutating}><span class="controls" data-mutating="guard" role="group" aria-label=${'controls of guard ' + g.name}>
      ${g.state === 'paused'
        ? html`<button type="button" disabled=${busy} onClick=${() => op('resume')}>Resume</button>`
        : html`<button type="button" disabled=${busy} onClick=${() => op('pause')}>Pause</button>`}
      <button type="button" disabled=${busy || !a} title=${a ? 'restore the policies the action replaced' : 'no active action'}
        onClick=${() => op('revert', `Revert ${g.name}: ${a.summary}?`)}>Revert</button>
      ${g.mode !== 'enforce' ? html`<button type="button" disabled=${busy} onClick=${() => op('promote', `Promote ${g.name} to enforce? Its next trigger changes traffic.`)}>Promote to enforce</button>` : ''}
    </span><//>
    ${err ? html`<p class="error" role="alert">${err}</p>` : ''}
    ${events.length ? html`<ol class="guard-events" data-testid="guard-events" aria-label=${'events of guard ' + g.name}>${events.map((e) => html`<${EventItem} key=${e.seq} e=${e} />`)}</ol>`
      : html`<p class="muted small">no event yet</p>`}
  </div>`;
}

// GuardsSection lists the guards of service (only those of one SLO when
// slo is set), newest events first.
export function GuardsSection({ service, slo, title = 'Guards' }) {
  const [bump, setBump] = useState(0);
  const q = encodeURIComponent(service);
  const [list, error] = usePoll(`/api/mesh/v1/guards?service=${q}`, GUARD_REFRESH_MS, bump);
  const [evs] = usePoll(`/api/mesh/v1/events?service=${q}&limit=200`, GUARD_REFRESH_MS, bump);
  const guards = list ? list.guards.filter((g) => !slo || g.slo === slo) : [];
  const events = (evs && evs.events) || [];
  return html`<div class="panel-section guards" data-testid="guards">
    <h3>${title}</h3>
    ${error ? html`<p class="muted">guards unavailable: ${error}</p>` : !list ? html`<p class="muted">loading…</p>`
      : guards.length === 0 ? html`<p class="muted">no guard acts on ${slo ? 'this SLO' : service} (<code>kind: Guard</code>, docs/guards.md)</p>`
      : guards.map((g) => html`<${GuardCard} key=${g.name} g=${g} events=${events.filter((e) => e.guard === g.name).slice(0, 20)} onDone=${() => setBump((n) => n + 1)} />`)}
  </div>`;
}

// actingGuards maps each service to its acting guards (for the graph's
// badge and the traffic the guards moved), from GET /api/mesh/v1/guards.
export function actingGuards(list) {
  const out = new Map();
  for (const g of (list && list.guards) || []) {
    if (g.state !== 'acting' || !g.action) continue;
    if (!out.has(g.service)) out.set(g.service, []);
    out.get(g.service).push(g);
  }
  return out;
}

// guardNodeLabel adds the acting badge (⚑ acting) to the first line of a
// node's label; guards are the service's acting guards (or undefined).
export function guardNodeLabel(lbl, guards) {
  if (!guards || !lbl) return lbl;
  const i = lbl.indexOf('\n');
  return i < 0 ? lbl + ' ⚑ acting' : lbl.slice(0, i) + ' ⚑ acting' + lbl.slice(i);
}

// guardEdgeLabel says how the acting guards of a callee moved its
// callers' traffic, in the guards' own words ("⚑ shift to v1"); the side
// panel has the full action.
export function guardEdgeLabel(guards) {
  return guards ? '⚑ ' + guards.map((g) => g.then.join(', ')).join('; ') : '';
}
