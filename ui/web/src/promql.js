// The PromQL behind the RED panels (docs/ui.md, "Queries the side panel
// sends"); pure, so the unit tests check the queries a user copies.
import { promString } from './api.js';

// selector builds the PromQL label matchers for a node or an edge. Requests
// are counted once: at the destination's proxy (inbound) when it is meshed,
// else at the caller's proxy (outbound). See docs/metrics.md. The user node
// (callers outside the mesh) is its outgoing traffic: what meshed services
// received from source_service="unknown".
export function selector(kind, a, b) {
  const m = [];
  if (kind === 'node' && a.kind === 'user') {
    m.push('direction="inbound"', 'source_service="unknown"');
  } else if (kind === 'node') {
    m.push(`direction="${a.kind === 'service' ? 'inbound' : 'outbound'}"`);
    m.push(`destination_service=${promString(a.kind === 'external' ? 'external' : a.service || a.id)}`);
    if (a.version) m.push(`destination_version=${promString(a.version)}`);
  } else {
    m.push(`direction="${b.kind === 'service' ? 'inbound' : 'outbound'}"`);
    m.push(`source_service=${promString(a.kind === 'user' ? 'unknown' : a.service || a.id)}`);
    if (a.version) m.push(`source_version=${promString(a.version)}`);
    m.push(`destination_service=${promString(b.kind === 'external' ? 'external' : b.service || b.id)}`);
    if (b.version) m.push(`destination_version=${promString(b.version)}`);
  }
  return m.join(',');
}

export function redQueries(sel, rateRange) {
  const req = `mesh_requests_total{${sel}}`;
  const fail = `mesh_requests_total{${sel},outcome="failure"}`;
  const bucket = `mesh_request_duration_seconds_bucket{${sel}}`;
  const q = (x) => `histogram_quantile(${x}, sum by (le) (rate(${bucket}[${rateRange}])))`;
  return {
    rate: [{ label: 'requests/s', query: `sum(rate(${req}[${rateRange}]))` }],
    errors: [{ label: 'error %', query: `100 * (sum(rate(${fail}[${rateRange}])) or vector(0)) / sum(rate(${req}[${rateRange}]))` }],
    latency: [
      { label: 'p50', query: q(0.5), scale: 1000 },
      { label: 'p95', query: q(0.95), scale: 1000 },
      { label: 'p99', query: q(0.99), scale: 1000 },
    ],
  };
}
