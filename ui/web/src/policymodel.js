// Pure functions over the policy list and the decision counts (no DOM):
// the graph's marks, the effective mode, the decisions' PromQL and words.
import { promString, windowToSeconds } from './api.js';

// The graph's glyph of a service with enforced / observe-only policies.
export const policyGlyph = { enforce: '◆', observe: '◇' };

// effectiveMode is the mode a policy runs in: the document's own, else the
// proxy's (--mode; proxyMode is the service's from the graph).
export function effectiveMode(doc, proxyMode) {
  if (doc.mode) return { mode: doc.mode, from: 'document' };
  return { mode: proxyMode === 'enforce' ? 'enforce' : 'observe', from: 'proxy' };
}

// splitOf returns the weights of a Route's split ("90/10") when a rule sends
// traffic to more than one version, else ''.
export function splitOf(doc) {
  if (doc.kind !== 'Route') return '';
  for (const r of doc.rules || []) {
    const bs = (r.backends || []).filter((b) => b.weight > 0);
    if (bs.length > 1) return bs.map((b) => b.weight).join('/');
  }
  return '';
}

// Kinds that describe rather than act on traffic: they give the graph no
// policy mark (an SLO is shown with the SLOs).
const markless = new Set(['SLO']);

// policyMarks summarises the policies per service for the graph:
// {mode: 'enforce'|'observe', split: '90/10', splitMode}. A service with at
// least one enforced policy is 'enforce'. modeOf(service) is the proxy mode.
export function policyMarks(policies, modeOf) {
  const out = new Map();
  for (const d of policies) {
    if (markless.has(d.kind)) continue;
    const m = effectiveMode(d, modeOf(d.service)).mode;
    const cur = out.get(d.service) || { mode: 'observe', split: '', splitMode: '' };
    if (m === 'enforce') cur.mode = 'enforce';
    const s = splitOf(d);
    if (s) {
      cur.split = s;
      cur.splitMode = m;
    }
    out.set(d.service, cur);
  }
  return out;
}

// decisionsQuery is the one PromQL of a panel: the decisions taken for
// requests to service (the proxies label them with the destination
// service) over the window.
export function decisionsQuery(service, window) {
  return `sum by (policy_kind, policy, decision, enforced) (increase(mesh_policy_decisions_total{service=${promString(service)}}[${windowToSeconds(window)}s]))`;
}

// decisionText says what a count means: what was done (enforced) or what
// would have been done (observed).
export function decisionText(decision, enforced, n) {
  const w = enforced ? '' : 'would have ';
  const times = n === 1 ? 'once' : `${n} times`;
  const reqs = `${n} request${n === 1 ? '' : 's'}`;
  if (decision.startsWith('route:')) return `${enforced ? 'sent' : 'would have sent'} ${reqs} to ${decision.slice(6)}`;
  switch (decision) {
    case 'retry': return `${enforced ? 'retried' : 'would have retried'} ${times}`;
    case 'retry_budget_spent': return `${w}skipped ${n} retr${n === 1 ? 'y' : 'ies'}: budget spent`;
    case 'timeout': return `${enforced ? 'timed out' : 'would have timed out'} ${reqs}`;
    case 'fault_delay': return `${enforced ? 'delayed' : 'would have delayed'} ${reqs}`;
    case 'fault_abort': return `${enforced ? 'aborted' : 'would have aborted'} ${reqs}`;
    case 'mirror': return `${enforced ? 'mirrored' : 'would have mirrored'} ${reqs}`;
    case 'rate_limited': return `${enforced ? 'answered' : 'would have answered'} 429 to ${reqs}`;
    case 'breaker_open': return `${enforced ? 'answered' : 'would have answered'} 503 (breaker open) to ${reqs}`;
    case 'ejected': return enforced ? `balanced ${reqs} around ejected endpoints` : `would have kept ${reqs} off ejected endpoints`;
    case 'unhealthy': return `${reqs} arrived while unhealthy${enforced ? '' : ' (observed)'}`;
    default: return `${decision}: ${reqs}${enforced ? '' : ' (observed)'}`;
  }
}

// groupCounts turns the query's vector into rows per policy ("Kind/name"),
// each count rounded to whole requests (increase() extrapolates).
export function groupCounts(vector) {
  const by = new Map();
  for (const { metric, value } of vector) {
    const n = Math.round(value);
    if (!(n > 0)) continue;
    const k = `${metric.policy_kind}/${metric.policy}`;
    if (!by.has(k)) by.set(k, []);
    by.get(k).push({ decision: metric.decision, enforced: metric.enforced === 'true', n });
  }
  for (const rows of by.values()) rows.sort((a, b) => a.decision.localeCompare(b.decision) || Number(a.enforced) - Number(b.enforced));
  return by;
}
