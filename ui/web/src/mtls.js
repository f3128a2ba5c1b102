// mTLS coverage on the topology page: an edge's padlock, its share of
// requests over mesh mTLS (side panel and tables) and the coverage strip's
// edge counts. Every figure is the server's (topology/graph.go: edge.tls,
// edge.mtls_fraction, coverage.edges_mtls / edges_plaintext, computed once
// from the proxies' tls label; the tables' mtls_fraction comes from the
// same engine); this module only prints them.
import { html } from './html.js';
import { fmtPct } from './api.js';

export const tlsInfo = {
  mtls: { glyph: '🔒', word: 'mTLS', title: 'every request over mesh mTLS' },
  partial: { glyph: '🔓', word: 'partly mTLS', title: 'some requests still in plaintext' },
  plaintext: { glyph: '', word: 'plaintext', title: 'no request over mesh mTLS (a side has no proxy, or mTLS is off)' },
};

// edgeTLSMark is what an edge's label starts with: a padlock on mTLS
// edges, an open one with the share on partly-mTLS edges.
export function edgeTLSMark(e) {
  if (e.tls === 'mtls') return tlsInfo.mtls.glyph;
  if (e.tls === 'partial') return `${tlsInfo.partial.glyph} ${fmtPct(e.mtls_fraction)}`;
  return '';
}

// edgeTLSClass is the Cytoscape class of an edge's tls state.
export function edgeTLSClass(e) {
  return tlsInfo[e.tls] ? ` tls-${e.tls}` : '';
}

// mtlsShare is a row's share over mTLS, null when unknown: graph edges
// carry tls ("" when no proxy reported them), table rows a null share.
export function mtlsShare(r) {
  if ('tls' in r && !r.tls) return null;
  return r.mtls_fraction ?? null;
}

// EdgeTLS is the side panel's line on an edge's mTLS.
export function EdgeTLS({ e }) {
  const info = tlsInfo[e.tls];
  if (!info) return html`<span class="tag" data-testid="edge-tls" data-tls="">mTLS unknown (no proxy reported this edge)</span>`;
  return html`<span class=${'tag tls-' + e.tls} data-testid="edge-tls" data-tls=${e.tls} title=${info.title}>
    ${info.glyph ? html`<span aria-hidden="true">${info.glyph} </span>` : ''}${info.word}: ${fmtPct(e.mtls_fraction)} of requests over mTLS</span>`;
}

// TLSCoverage is the coverage strip's part on mTLS.
export function TLSCoverage({ c }) {
  if (c.edges_mtls === undefined) return '';
  return html`<span data-testid="coverage-tls" title="edges whose proxy-reported requests all ran over mesh mTLS / edges with requests in plaintext">
    <b><span aria-hidden="true">🔒</span> Edges in mTLS</b> ${c.edges_mtls}/${c.edges} · <b>still in plaintext</b> <span data-testid="edges-plaintext">${c.edges_plaintext}</span></span>`;
}
