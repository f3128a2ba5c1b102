// The native RED tables behind the side panel's figures (docs/ui.md, "Where
// the side panel's numbers come from"); pure, so the unit tests check the
// requests. Every figure the panel prints comes from the one RED engine:
// the header from the graph's node or edge, the tables from
// /api/mesh/routes, /api/mesh/versions and /api/mesh/edges (projections of
// the same per-edge and per-route aggregates; an edge's versions from the
// version view of /api/mesh/graph) at the graph's own time, so rows add up
// to the header digit for digit.

// apiService is the service name the native API knows a node by: callers
// outside the mesh are "unknown".
export function apiService(n) {
  return n.kind === 'user' ? 'unknown' : n.service || n.id;
}

// panelTables returns the tables of a node's or an edge's panel:
// [{id, title, keyLabel, path, params, rowsOf(body) → [{key, rps, error_rate, p99_ms}]} | {id, title, note}].
// graph is the graph state (nodes: Map) for the version view's caller
// versions.
export function panelTables(kind, a, b, graph) {
  const routeRows = (body) => (body.routes || []).map((r) => ({ ...r, key: r.route || '(none)' }));
  if (kind === 'node' && a.kind === 'user') {
    return [
      { id: 'top-routes', title: 'Top routes', keyLabel: 'service route', path: 'routes', params: { source: 'unknown' },
        rowsOf: (body) => (body.routes || []).map((r) => ({ ...r, key: `${r.service} ${r.route || '(none)'}` })) },
      { id: 'versions', title: 'Destinations', keyLabel: 'destination', path: 'edges', params: { source: 'unknown' },
        rowsOf: (body) => (body.edges || []).map((e) => ({ ...e, key: e.destination })) },
    ];
  }
  if (kind === 'node') {
    const svc = apiService(a);
    const routes = { id: 'top-routes', title: 'Top routes', keyLabel: 'route', path: 'routes', params: a.version ? { service: svc, version: a.version } : { service: svc }, rowsOf: routeRows };
    const versions = { id: 'versions', title: 'Versions', keyLabel: 'version', path: 'versions', params: { service: svc },
      rowsOf: (body) => (body.versions || []).map((v) => ({ ...v, key: v.version || '(none)' })) };
    return [routes, versions];
  }
  const src = apiService(a), dst = apiService(b);
  const params = { service: dst, source: src };
  if (b.version) params.version = b.version;
  // The routes API splits by caller service, not caller version: a
  // version-view edge from one of several versions of its caller has no
  // route rows that add up to it.
  const siblings = a.version && graph ? [...graph.nodes.values()].filter((n) => n.version && apiService(n) === src).length : 0;
  if (siblings > 1) {
    return [{ id: 'top-routes', title: 'Top routes', note: `Routes are not split by caller version: see the edge ${src} → ${b.id} in the services view.` }];
  }
  const routes = { id: 'top-routes', title: 'Top routes', keyLabel: 'route', path: 'routes', params, rowsOf: routeRows };
  if (b.version || a.version) return [routes];
  // A services-view edge: its version-view edges (caller version → called
  // version), as the version view of the graph has them.
  const versions = { id: 'versions', title: 'Versions', keyLabel: 'caller → called', path: 'graph', params: { view: 'version' },
    rowsOf: (body) => {
      const svc = new Map((body.nodes || []).map((n) => [n.id, apiService(n)]));
      return (body.edges || []).filter((e) => svc.get(e.source) === src && svc.get(e.target) === dst).map((e) => ({ ...e, key: `${e.source} → ${e.target}` }));
    } };
  return [routes, versions];
}

// sortRows orders table rows by rate (highest first), then by key.
export function sortRows(rows) {
  return rows.slice().sort((x, y) => (y.rps || 0) - (x.rps || 0) || (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
}

// tableURL is the request of a table at the graph's time and window.
export function tableURL(t, window, at) {
  const q = new URLSearchParams({ window, ...t.params });
  if (at) q.set('at', at);
  return `/api/mesh/${t.path}?${q}`;
}
