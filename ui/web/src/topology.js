// Topology page: the live service graph.
import { html } from './html.js';
import { useEffect, useLayoutEffect, useMemo, useRef, useState, useCallback } from 'preact/hooks';
import cytoscape from 'cytoscape';
import { getJSON, fmtRate, fmtPct, fmtMs, fmtTime, windows } from './api.js';
import { timeParams, apiTime, TimeControls, CoverageNote } from './time.js';
import { setQuery, withQuery, onLinkClick } from './router.js';
import { usePolicies } from './policies.js';
import { policyMarks, policyGlyph } from './policymodel.js';
import { applyMessage, fromSnapshot, emptyGraph, health, healthInfo, kindInfo, groupGraph } from './graphmodel.js';
import { compileFind } from './findexpr.js';
import { StableLayout } from './layout.js';
import { SidePanel } from './sidepanel.js';
import { usePoll } from './poll.js';
import { actingGuards, guardNodeLabel, guardEdgeLabel } from './guards.js';
import { edgeTLSMark, edgeTLSClass, TLSCoverage } from './mtls.js';

// Above this many drawn nodes the page shows the grouped view (or a table
// when nodes have no groups) instead of drawing every node.
export const MAX_DRAWN_NODES = 1000;

export { windows };
// The windows the server streams (topology stream_windows, default); other
// windows are polled from GET /api/mesh/graph.
export const streamWindows = ['1m', '5m', '1h'];
const POLL_MS = 10000;
const edgeLabels = { rps: 'requests/s', error: 'error %', p99: 'p99 latency', none: 'none' };

function params(q) {
  const t = timeParams(q);
  return {
    t,
    window: t.window,
    view: q.get('view') === 'version' ? 'version' : 'service',
    at: t.at,
    label: edgeLabels[q.get('label')] ? q.get('label') : 'rps',
    group: q.get('group') || '',
    hideHealthy: q.get('hide') === 'healthy',
    find: q.get('find') || '',
    paused: q.get('paused') === '1',
    sel: q.get('sel') || '',
    mode: ['graph', 'grouped', 'table'].includes(q.get('mode')) ? q.get('mode') : 'auto',
  };
}

// useGraphSource keeps the graph state from the stream (live) or from one
// GET (replay at a past time or range, or paused on first load). Live, the
// first paint comes from GET /api/mesh/graph while the stream connects (the
// stream's snapshot replaces it); windows the server does not stream are
// polled.
function useGraphSource(p) {
  const ref = useRef(emptyGraph());
  const [tick, setTick] = useState(0);
  const [status, setStatus] = useState({ state: 'connecting', error: null });
  const pausedRef = useRef(p.paused);
  pausedRef.current = p.paused;
  const live = !p.at && !p.paused;

  useEffect(() => {
    let cancelled = false;
    let ws = null;
    let retry = null;
    let raf = 0;
    const bump = () => {
      if (raf) return;
      raf = requestAnimationFrame(() => {
        raf = 0;
        if (!cancelled) setTick((t) => t + 1);
      });
    };
    const graphURL = '/api/mesh/graph?' + new URLSearchParams({ ...apiTime(p.t), view: p.view });
    const fetchOnce = (state) => {
      setStatus((s) => (s.state === state ? s : { state: 'loading', error: null }));
      return getJSON(graphURL)
        .then((g) => {
          if (cancelled) return;
          ref.current = fromSnapshot(g);
          setStatus({ state, error: null });
          bump();
        })
        .catch((e) => !cancelled && setStatus({ state: 'error', error: e.message }));
    };
    if (!live) {
      // Paused with a graph already on screen keeps it; otherwise load one.
      if (p.at || !ref.current.nodes.size || ref.current.window !== p.window || ref.current.view !== p.view) fetchOnce(p.at ? 'replay' : 'paused');
      else setStatus({ state: 'paused', error: null });
      return () => {
        cancelled = true;
      };
    }
    if (!streamWindows.includes(p.window)) {
      let poll = 0;
      const loop = () => fetchOnce('polling').then(() => {
        if (!cancelled) poll = setTimeout(loop, POLL_MS);
      });
      loop();
      return () => {
        cancelled = true;
        clearTimeout(poll);
        cancelAnimationFrame(raf);
      };
    }
    // First paint from the HTTP snapshot; ignored once the stream has sent
    // its own.
    let streamed = false;
    getJSON(graphURL)
      .then((g) => {
        if (cancelled || streamed) return;
        ref.current = fromSnapshot(g);
        bump();
      })
      .catch(() => {}); // the stream reports its own errors
    let attempt = 0;
    const connect = () => {
      const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
      const q = new URLSearchParams({ window: p.window, view: p.view });
      ws = new WebSocket(`${proto}//${location.host}/api/mesh/graph/stream?${q}`);
      setStatus({ state: 'connecting', error: null });
      ws.onopen = () => {
        attempt = 0;
        setStatus({ state: 'live', error: null });
      };
      ws.onmessage = (ev) => {
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch {
          setStatus({ state: 'live', error: 'stream sent a frame that is not JSON' });
          return;
        }
        if (msg.type === 'snapshot') streamed = true;
        if (msg.type === 'diff' && ref.current.seq && msg.seq !== ref.current.seq + 1) {
          // A lost frame: start over from a fresh snapshot.
          ws.close();
          return;
        }
        ref.current = applyMessage(ref.current, msg).state;
        bump();
      };
      ws.onclose = () => {
        if (cancelled) return;
        attempt++;
        setStatus({ state: 'reconnecting', error: 'stream closed; reconnecting' });
        retry = setTimeout(connect, Math.min(5000, 250 * 2 ** attempt));
      };
    };
    connect();
    return () => {
      cancelled = true;
      clearTimeout(retry);
      cancelAnimationFrame(raf);
      if (ws) {
        ws.onclose = null;
        ws.close();
      }
    };
  }, [p.window, p.view, p.at, p.t.secs, live]);
  return { graph: ref.current, tick, status };
}

function nodeLabel(n) {
  const h = health(n.health);
  const kindTag = n.kind && n.kind !== 'service' ? ` [${kindInfo[n.kind] ? kindInfo[n.kind].label : n.kind}]` : '';
  const name = n.members ? `${n.service} (${n.members})` : n.id;
  // User nodes carry their outgoing traffic.
  const stats = `\n${fmtRate(n.rps)} rps · ${fmtPct(n.error_rate)} err`;
  return `${h.glyph} ${name}${kindTag}${stats}`;
}

// Level of detail of big graphs (see GraphCanvas): below DETAIL_ZOOM labels
// drop their numbers; below NAME_ZOOM (where the 11 px node font would be
// drawn under Cytoscape's min-zoomed-font-size of 6 px, i.e. not at all)
// nodes carry no label, so the first render and the updates skip measuring
// labels nobody can see.
const DETAIL_ZOOM = 0.6;
const NAME_ZOOM = 0.55;
const BIG_GRAPH = 300;

// nameLabel is the short label: the health glyph and the name.
function nameLabel(n) {
  return `${health(n.health).glyph} ${n.members ? `${n.service} (${n.members})` : n.id}`;
}

function edgeLabel(e, which) {
  switch (which) {
    case 'rps': return `${fmtRate(e.rps)} rps`;
    case 'error': return `${fmtPct(e.error_rate)} err`;
    case 'p99': return `p99 ${fmtMs(e.p99_ms)}`;
    default: return '';
  }
}

// visibleGraph applies the filters; returns nodes, edges, found ids and the
// drawing mode.
function visibleGraph(graph, p, findFn) {
  let nodes = [...graph.nodes.values()];
  if (p.group) nodes = nodes.filter((n) => (n.group || '') === p.group || n.kind === 'user');
  if (p.hideHealthy) {
    // Keep unhealthy nodes and their direct peers so the problem has context.
    const bad = new Set(nodes.filter((n) => n.health === 'degraded' || n.health === 'failing').map((n) => n.id));
    for (const e of graph.edges.values()) if (e.health === 'degraded' || e.health === 'failing') {
      bad.add(e.source);
      bad.add(e.target);
    }
    nodes = nodes.filter((n) => bad.has(n.id));
  }
  const ids = new Set(nodes.map((n) => n.id));
  let edges = [...graph.edges.values()].filter((e) => ids.has(e.source) && ids.has(e.target));
  let mode = p.mode;
  if (mode === 'auto') mode = nodes.length > MAX_DRAWN_NODES ? 'grouped' : 'graph';
  if (mode === 'grouped') {
    const hasGroups = nodes.some((n) => n.group);
    if (!hasGroups) mode = 'table';
    else ({ nodes, edges } = groupGraph(nodes, edges));
    if (mode === 'grouped' && nodes.length > MAX_DRAWN_NODES) mode = 'table';
  }
  const found = new Set();
  if (findFn) {
    for (const n of nodes) if (findFn(n)) found.add(n.id);
  }
  return { nodes, edges, found, mode };
}

const cyStyle = [
  // Every node has a health, kind and size class and every edge a health and
  // width class (see GraphCanvas), so the base rules leave out what the
  // classes set and what Cytoscape's defaults already are (30 px ellipse):
  // each property is applied to each element, thousands of times.
  { selector: 'node', style: { 'border-width': 2, 'border-color': '#1f2328' } },
  // Label properties only for elements that have a label: zoomed-out big
  // graphs carry none, and Cytoscape then applies a third of the properties.
  { selector: 'node[?label]', style: {
    label: 'data(label)', 'text-wrap': 'wrap', 'text-valign': 'bottom', 'text-margin-y': 4,
    'font-size': 11, color: '#111', 'text-background-color': '#fff', 'text-background-opacity': 0.85,
    'text-background-padding': 2, 'min-zoomed-font-size': 6,
  } },
  { selector: 'node.mode-enforce', style: { 'outline-width': 2, 'outline-color': '#1f6feb', 'outline-offset': 2 } },
  { selector: 'edge', style: { 'target-arrow-shape': 'triangle', 'curve-style': 'bezier' } },
  // A service whose guard acts, and the edges whose traffic it moved.
  { selector: 'node.guard-acting', style: { 'underlay-color': '#bf8700', 'underlay-opacity': 0.45, 'underlay-padding': 7 } },
  { selector: 'edge.guard-moved', style: { 'underlay-color': '#bf8700', 'underlay-opacity': 0.35, 'underlay-padding': 4 } },
  { selector: 'edge[?label]', style: {
    label: 'data(label)', 'font-size': 10,
    'text-background-color': '#fff', 'text-background-opacity': 0.9, 'text-background-padding': 1,
    'text-rotation': 'autorotate', color: '#222', 'min-zoomed-font-size': 7,
  } },
  // Colour, shape and size come from classes: Cytoscape caches styles per
  // class combination, which keeps thousands of elements cheap to style.
  ...Object.entries(healthInfo).flatMap(([h, info]) => [
    { selector: `node.health-${h}`, style: { 'background-color': info.color } },
    { selector: `edge.health-${h}`, style: { 'line-color': info.color, 'target-arrow-color': info.color } },
  ]),
  ...Object.entries(kindInfo).filter(([, info]) => info.shape !== 'ellipse').map(([k, info]) => ({ selector: `node.kind-${k}`, style: { shape: info.shape } })),
  ...[1, 2, 3, 4, 5].map((i) => ({ selector: `node.size-${i}`, style: { width: 30 + 6 * i, height: 30 + 6 * i } })),
  ...[0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => ({ selector: `edge.width-${i}`, style: { width: 1 + i / 2 } })),
  { selector: 'node.kind-user', style: { 'background-color': '#8c959f', width: 30, height: 30 } },
  { selector: 'node.kind-unmeshed', style: { 'border-style': 'dashed', 'border-width': 3, 'background-opacity': 0.55 } },
  { selector: 'node.kind-external', style: { 'border-style': 'dotted', 'border-width': 3 } },
  { selector: 'node.kind-database', style: { 'border-width': 3 } },
  { selector: 'node.health-failing', style: { 'border-width': 5, 'border-style': 'double', 'border-color': '#7f1d1d' } },
  { selector: 'edge.health-failing', style: { 'line-style': 'dashed' } },
  { selector: 'edge.health-degraded', style: { 'line-style': 'dashed', 'line-dash-pattern': [8, 3] } },
  { selector: 'edge.seen-spans', style: { 'line-style': 'dotted' } },
  { selector: '.dimmed', style: { opacity: 0.25 } },
  { selector: 'node.found', style: { 'overlay-color': '#f5c400', 'overlay-opacity': 0.35, 'overlay-padding': 8 } },
  { selector: ':selected', style: { 'overlay-color': '#1f6feb', 'overlay-opacity': 0.3, 'overlay-padding': 10 } },
];

// Big graphs: straight edges (no bezier control points for thousands of
// edges).
const bigStyle = [
  { selector: 'edge', style: { 'curve-style': 'straight' } },
  // Zoomed out so far that names are unreadable (arrowheads would be a
  // pixel or two): haystack lines, Cytoscape's cheapest edges, without
  // arrowheads; direction still reads from the layout (callers left).
  { selector: 'edge.far', style: { 'curve-style': 'haystack', 'haystack-radius': 0 } },
];

// lodLevel is the label detail for the current zoom: 2 full labels, 1 glyph
// and name, 0 none. Graphs up to BIG_GRAPH nodes always get full labels.
function lodLevel(cy, big) {
  if (!big) return 2;
  const z = cy.zoom();
  return z >= DETAIL_ZOOM ? 2 : z >= NAME_ZOOM ? 1 : 0;
}

// sizeClass buckets a node's request rate into 6 sizes (30..60 px): small
// rate changes do not restyle the node.
function sizeClass(n, maxRps) {
  const r = maxRps > 0 ? Math.sqrt((n.rps || 0) / maxRps) : 0;
  return Math.round(5 * r);
}
function widthClass(e, maxERps) {
  return maxERps > 0 ? Math.round(8 * Math.sqrt((e.rps || 0) / maxERps)) : 0;
}

// fitPositions frames the nodes from their positions (plus a margin for
// labels) instead of cy.fit(), which measures every label first: on big
// graphs that measuring dominated the first render.
function fitPositions(cy, pos) {
  let x1 = Infinity, y1 = Infinity, x2 = -Infinity, y2 = -Infinity;
  const visit = (p) => {
    x1 = Math.min(x1, p.x); y1 = Math.min(y1, p.y);
    x2 = Math.max(x2, p.x); y2 = Math.max(y2, p.y);
  };
  if (pos) for (const p of pos.values()) visit(p);
  else cy.nodes().forEach((n) => visit(n.position()));
  if (x1 === Infinity) return;
  const pad = 30, mx = 90, myTop = 40, myBottom = 60; // node radius and labels
  x1 -= mx; x2 += mx; y1 -= myTop; y2 += myBottom;
  const w = cy.width() - 2 * pad, h = cy.height() - 2 * pad;
  const zoom = Math.max(cy.minZoom(), Math.min(1.5, w / (x2 - x1), h / (y2 - y1)));
  cy.viewport({ zoom, pan: { x: pad + (w - zoom * (x2 - x1)) / 2 - zoom * x1, y: pad + (h - zoom * (y2 - y1)) / 2 - zoom * y1 } });
}

// GraphCanvas draws nodes and edges with Cytoscape. It keeps one Cytoscape
// instance and syncs elements in place, so nodes never jump: positions come
// from a StableLayout that only places new nodes.
function GraphCanvas({ nodes, edges, found, label, sel, onSelect, fitKey, layoutKey, marks, acting }) {
  const box = useRef(null);
  const cyRef = useRef(null);
  const layoutRef = useRef(null);
  const fittedRef = useRef('');
  const lodRef = useRef(-1); // label level of the last sync (see lodLevel)
  const [, setLod] = useState(0);
  const onSelectRef = useRef(onSelect);
  onSelectRef.current = onSelect;

  // Big graphs get cheaper renderer settings; the instance is rebuilt when
  // the graph crosses the threshold (positions live in the layout, so
  // nothing moves).
  const big = nodes.length > BIG_GRAPH;
  const bigRef = useRef(big);
  bigRef.current = big;
  // One instance for the life of the canvas, made at mount (while the page
  // waits for the stream's first snapshot); crossing the big-graph
  // threshold swaps the stylesheet and renderer settings instead of
  // rebuilding it (positions live in the layout, so nothing moves).
  // Layout effects: the instance, the framing and each sync happen in the
  // same task as the render that brought the nodes, not a frame later.
  useLayoutEffect(() => {
    const cy = cytoscape({
      style: cyStyle,
      container: box.current,
      layout: { name: 'preset' },
      minZoom: 0.05,
      maxZoom: 3,
      wheelSensitivity: 0.3,
      boxSelectionEnabled: false,
      autoungrabify: false,
    });
    cy.scratch('_meshscopeBig', false);
    cy.on('zoom', () => {
      if (lodRef.current >= 0 && lodLevel(cy, bigRef.current) !== lodRef.current) setLod((x) => x + 1);
    });
    cy.on('tap', 'node', (ev) => onSelectRef.current('node:' + ev.target.id()));
    cy.on('tap', 'edge', (ev) => onSelectRef.current('edge:' + ev.target.id()));
    cy.on('tap', (ev) => {
      if (ev.target === cy) onSelectRef.current('');
    });
    // The side panel opening or the window resizing changes the canvas
    // size: keep the drawing framed (positions never change, only the view).
    let lastSize = '';
    const ro = new ResizeObserver(() => {
      if (!box.current || cy.destroyed()) return;
      const size = `${box.current.clientWidth}x${box.current.clientHeight}`;
      if (size === lastSize) return;
      const first = lastSize === '';
      lastSize = size;
      cy.resize();
      if (!first && cy.nodes().length) fitPositions(cy);
    });
    ro.observe(box.current);
    cyRef.current = cy;
    // A debugging and test hook: the Cytoscape instance of the page.
    window.meshscope = Object.assign(window.meshscope || {}, { cy });
    return () => {
      ro.disconnect();
      cy.destroy();
      cyRef.current = null;
    };
  }, []);

  useLayoutEffect(() => {
    const cy = cyRef.current;
    if (!cy || cy.scratch('_meshscopeBig') === big) return;
    cy.scratch('_meshscopeBig', big);
    // Straight edges on big graphs: bezier control points for thousands of
    // edges are a large part of the first render.
    cy.style(big ? [...cyStyle, ...bigStyle] : cyStyle);
    const r = cy.renderer();
    if (r) {
      // Big graphs draw a texture while panning or zooming, hiding edges, and
      // one canvas pixel per CSS pixel: a high-DPI screen would otherwise
      // draw (and cache textures for) 4x the pixels. (Cytoscape reads these
      // only at construction; its renderer keeps them as fields.)
      r.textureOnViewport = big;
      r.hideEdgesOnViewport = big;
      r.forcedPixelRatio = big ? 1 : null;
      cy.resize();
    }
    fittedRef.current = '';
    lodRef.current = -1;
  }, [big]);

  useLayoutEffect(() => {
    layoutRef.current = new StableLayout();
    fittedRef.current = '';
    lodRef.current = -1;
    const cy = cyRef.current;
    if (cy) cy.elements().remove();
  }, [layoutKey]);

  useLayoutEffect(() => {
    const cy = cyRef.current;
    if (!cy) return;
    const t0 = performance.now();
    const pos = layoutRef.current.place(nodes, edges);
    // Frame first (from positions alone), so the first sync already knows
    // the zoom and builds the labels for it: no second pass after the fit.
    if (nodes.length && fittedRef.current !== fitKey) {
      fittedRef.current = fitKey;
      fitPositions(cy, pos);
    }
    const maxRps = nodes.reduce((m, n) => Math.max(m, n.rps || 0), 0);
    const maxERps = edges.reduce((m, e) => Math.max(m, e.rps || 0), 0);
    const findOn = found.size > 0;
    const nodeByID = new Map(nodes.map((n) => [n.id, n]));
    // Level of detail: when labels are too small to read (big graphs zoomed
    // out) they are shortened or left out, so the first render and updates
    // that only change numbers do not measure thousands of labels. Zooming
    // in brings them back.
    const lod = lodLevel(cy, big);
    lodRef.current = lod;
    const nodeText = lod === 2 ? nodeLabel : lod === 1 ? nameLabel : () => '';
    const empty = cy.elements().empty();
    cy.batch(() => {
      const want = new Set();
      const fresh = []; // added in one call: much faster than one by one
      const freshEdges = [];
      for (const n of nodes) {
        want.add(n.id);
        const mark = marks.get(n.service || n.id);
        const txt = nodeText(n);
        const lbl0 = mark && txt ? txt.replace('\n', ` ${policyGlyph[mark.mode]}\n`) + (txt.includes('\n') ? '' : ` ${policyGlyph[mark.mode]}`) : txt;
        const guards = acting.get(n.service || n.id);
        const lbl = guardNodeLabel(lbl0, guards);
        const classes = `kind-${kindInfo[n.kind] ? n.kind : 'service'} health-${healthInfo[n.health] ? n.health : 'no_data'} mode-${n.mode} size-${sizeClass(n, maxRps)}` + (mark ? ` pol-${mark.mode}` : '') + (guards ? ' guard-acting' : '') + (findOn ? (found.has(n.id) ? ' found' : ' dimmed') : '');
        if (empty || !cy.hasElementWithId(n.id)) {
          fresh.push({ group: 'nodes', data: { id: n.id, label: lbl }, position: { ...pos.get(n.id) }, classes });
        } else {
          const el = cy.getElementById(n.id);
          if (el.data('label') !== lbl) el.data('label', lbl);
          if (el.classes().join(' ') !== classes) el.classes(classes);
        }
      }
      for (const e of edges) {
        want.add(e.id);
        const tgt = nodeByID.get(e.target);
        const tm = tgt && tgt.kind === 'service' && !tgt.version ? marks.get(tgt.service || tgt.id) : null;
        const split = tm && tm.split ? `⇉ split ${tm.split}${tm.splitMode === 'observe' ? ' (observe)' : ''}` : '';
        const moved = tgt && tgt.kind === 'service' ? guardEdgeLabel(acting.get(tgt.service || tgt.id)) : '';
        const lbl = lod === 2 ? [moved, edgeTLSMark(e), split, edgeLabel(e, label)].filter(Boolean).join(' · ') : '';
        const classes = `health-${healthInfo[e.health] ? e.health : 'no_data'} seen-${e.seen_by} width-${widthClass(e, maxERps)}` + edgeTLSClass(e) + (split ? ' split' : '') + (moved ? ' guard-moved' : '') + (findOn && !(found.has(e.source) && found.has(e.target)) ? ' dimmed' : '') + (lod === 0 ? ' far' : '');
        if (empty || !cy.hasElementWithId(e.id)) freshEdges.push({ group: 'edges', data: { id: e.id, source: e.source, target: e.target, label: lbl }, classes });
        else {
          const el = cy.getElementById(e.id);
          if (el.data('label') !== lbl) el.data('label', lbl);
          if (el.classes().join(' ') !== classes) el.classes(classes);
        }
      }
      if (!empty) {
        const gone = cy.elements().filter((el) => !want.has(el.id()));
        if (gone.nonempty()) gone.remove();
      }
      // Nodes first: edges need their ends.
      if (fresh.length || freshEdges.length) cy.add(fresh.concat(freshEdges));
      cy.elements(':selected').unselect();
      if (sel) {
        const id = sel.slice(sel.indexOf(':') + 1);
        const el = cy.getElementById(id);
        if (!el.empty()) el.select();
      }
    });
    // Render timings for the browser benchmark (ui/bench): the JS time of each
    // sync and when the first drawing with nodes reached the screen.
    const perf = (window.meshscope = window.meshscope || {});
    perf.syncs = perf.syncs || [];
    perf.syncs.push({ at: t0, ms: performance.now() - t0, nodes: nodes.length });
    if (perf.syncs.length > 1000) perf.syncs.shift();
    if (nodes.length && !perf.firstRender) {
      perf.firstRender = -1;
      requestAnimationFrame(() => requestAnimationFrame(() => (perf.firstRender = performance.now())));
    }
    box.current.dataset.nodes = String(cy.nodes().length);
    box.current.dataset.edges = String(cy.edges().length);
  });

  return html`<div class="graph-wrap">
    <div ref=${box} id="graph" class="graph" role="img" aria-label="Service graph (the node list below has the same content as text)"></div>
    <div class="graph-buttons">
      <button type="button" onClick=${() => cyRef.current && fitPositions(cyRef.current)} title="Fit the graph to the screen">Fit</button>
      <button type="button" onClick=${() => cyRef.current && cyRef.current.zoom({ level: cyRef.current.zoom() * 1.25, renderedPosition: { x: box.current.clientWidth / 2, y: box.current.clientHeight / 2 } })} aria-label="Zoom in">+</button>
      <button type="button" onClick=${() => cyRef.current && cyRef.current.zoom({ level: cyRef.current.zoom() / 1.25, renderedPosition: { x: box.current.clientWidth / 2, y: box.current.clientHeight / 2 } })} aria-label="Zoom out">−</button>
    </div>
  </div>`;
}

function CoverageStrip({ c }) {
  if (!c) return html`<div class="coverage muted" data-testid="coverage">coverage: no data yet</div>`;
  const pct = (f) => `${Math.round((f || 0) * 100)}%`;
  return html`<div class="coverage" data-testid="coverage" aria-label="Mesh coverage">
    <span title="services with a proxy / all services"><b>Meshed services</b> ${c.meshed_services}/${c.services} (${pct(c.service_fraction)})
      <span class="bar" aria-hidden="true"><span style=${{ width: pct(c.service_fraction) }}></span></span></span>
    <span title="requests through at least one proxy / all requests seen"><b>Requests through proxies</b> ${pct(c.request_fraction)}
      <span class="bar" aria-hidden="true"><span style=${{ width: pct(c.request_fraction) }}></span></span></span>
    <span><b>Modes</b> observe ${c.observe_services} · enforce ${c.enforce_services}</span>
    <span><b>Edges seen by both proxies</b> ${c.edges_both_sides}/${c.edges}</span>
    <${TLSCoverage} c=${c} />
    ${c.unmeshed_services && c.unmeshed_services.length ? html`<span><b>Needs a proxy:</b> ${c.unmeshed_services.join(', ')}</span>` : ''}
  </div>`;
}

function NodeTable({ nodes, found, onSelect, caption }) {
  const rows = [...nodes].sort((a, b) => (b.rps || 0) - (a.rps || 0)).slice(0, 2000);
  return html`<div class="table-wrap"><table class="data" data-testid="node-table">
    <caption>${caption}</caption>
    <thead><tr><th scope="col">Node</th><th scope="col">Kind</th><th scope="col">Health</th><th scope="col">Group</th><th scope="col" class="num">RPS</th><th scope="col" class="num">Errors</th><th scope="col" class="num">p99</th></tr></thead>
    <tbody>${rows.map((n) => html`<tr key=${n.id} class=${found.size && !found.has(n.id) ? 'dimmed' : ''}>
      <td><button class="linklike" type="button" onClick=${() => onSelect('node:' + n.id)}>${n.id}</button></td>
      <td>${n.kind}</td><td><${HealthBadge} h=${n.health} /></td><td>${n.group || ''}</td>
      <td class="num">${fmtRate(n.rps)}</td><td class="num">${fmtPct(n.error_rate)}</td><td class="num">${fmtMs(n.p99_ms)}</td></tr>`)}</tbody>
  </table>${nodes.length > rows.length ? html`<p class="muted">${nodes.length - rows.length} more nodes not listed; narrow with the filters.</p>` : ''}</div>`;
}

export function HealthBadge({ h }) {
  const info = health(h);
  return html`<span class=${'badge health-' + (h || 'no_data')}><span aria-hidden="true">${info.glyph}</span> ${info.word}</span>`;
}

export function TopologyPage({ query }) {
  const p = params(query);
  const { graph, tick, status } = useGraphSource(p);
  const [findText, setFindText] = useState(p.find);
  // The text twin of the graph is only rendered while open (big graphs).
  const [listOpen, setListOpen] = useState(false);
  useEffect(() => setFindText(p.find), [p.find]);
  let findFn = null, findError = null;
  try {
    findFn = compileFind(p.find);
  } catch (e) {
    findError = e.message;
  }
  const vis = useMemo(() => visibleGraph(graph, p, findFn), [graph, tick, p.group, p.hideHealthy, p.find, p.mode]);
  // One policy list for the page (refreshed every 10 s): the graph's
  // enforced / observe-only marks and split edges, and the side panel.
  const pol = usePolicies();
  const marks = useMemo(() => {
    const modes = new Map();
    for (const n of graph.nodes.values()) if (n.mode && n.mode !== 'none') modes.set(n.service || n.id, n.mode);
    return policyMarks(pol.policies, (s) => modes.get(s));
  }, [pol.policies, graph, tick]);
  // The guards that act now (their state from the guard controller).
  const [guardList] = usePoll('/api/mesh/v1/guards', 10000);
  const acting = useMemo(() => actingGuards(guardList), [guardList]);
  const groups = useMemo(() => [...new Set([...graph.nodes.values()].map((n) => n.group).filter(Boolean))].sort(), [graph, tick]);
  const onSelect = useCallback((s) => setQuery({ sel: s || null }), []);
  const findTimer = useRef(0);
  const onFind = (v) => {
    setFindText(v);
    clearTimeout(findTimer.current);
    findTimer.current = setTimeout(() => setQuery({ find: v }, { replace: true }), 250);
  };
  const statusText = {
    live: 'Live', polling: 'Live (every 10 s)', connecting: 'Connecting…', reconnecting: 'Reconnecting…', paused: 'Paused', replay: 'Replay', loading: 'Loading…', error: 'Error',
  }[status.state] || status.state;

  return html`<section class="page topology" aria-labelledby="topo-h">
    <h1 id="topo-h" class="sr-only">Topology</h1>
    <form class="toolbar" onSubmit=${(e) => e.preventDefault()} aria-label="Graph controls">
      <${TimeControls} t=${p.t} />
      <label>View <select value=${p.view} onChange=${(e) => setQuery({ view: e.target.value === 'service' ? null : e.target.value, sel: null })}>
        <option value="service">services</option><option value="version">versions</option></select></label>
      <label>Edge labels <select value=${p.label} onChange=${(e) => setQuery({ label: e.target.value === 'rps' ? null : e.target.value })}>
        ${Object.entries(edgeLabels).map(([k, v]) => html`<option value=${k}>${v}</option>`)}</select></label>
      <label>Group <select value=${p.group} onChange=${(e) => setQuery({ group: e.target.value })}>
        <option value="">all</option>${groups.map((g) => html`<option value=${g}>${g}</option>`)}</select></label>
      <label class="check"><input type="checkbox" checked=${p.hideHealthy} onChange=${(e) => setQuery({ hide: e.target.checked ? 'healthy' : null })} /> Hide healthy</label>
      <label class="find">Find <input type="search" value=${findText} placeholder="name or error_rate > 1%" aria-invalid=${findError ? 'true' : 'false'} aria-describedby="find-help"
        onInput=${(e) => onFind(e.target.value)} /></label>
      ${p.at ? '' : html`
        <button type="button" aria-pressed=${p.paused ? 'true' : 'false'} onClick=${() => setQuery({ paused: p.paused ? null : '1' })}>${p.paused ? 'Resume' : 'Pause'}</button>`}
      <label>Draw <select value=${p.mode} onChange=${(e) => setQuery({ mode: e.target.value === 'auto' ? null : e.target.value })}>
        <option value="auto">auto</option><option value="graph">every node</option><option value="grouped">grouped</option><option value="table">table</option></select></label>
      <span class="status" role="status" data-testid="stream-status" data-seq=${graph.seq} data-state=${status.state}>
        <span class=${'dot ' + status.state} aria-hidden="true"></span>${statusText}${graph.at ? ` · ${fmtTime(graph.at)}` : ''}${graph.seq ? ` · #${graph.seq}` : ''}
      </span>
    </form>
    <div id="find-help" class=${findError ? 'error' : 'sr-only'}>${findError || 'Find by name, or by an expression such as error_rate > 1% and p99 > 200ms.'}</div>
    ${status.error && status.state !== 'live' ? html`<p class="error" role="alert">${status.error}</p>` : ''}
    <${CoverageStrip} c=${graph.coverage} />
    <${CoverageNote} covered=${graph.covered_seconds} secs=${p.t.secs} />
    <div class="topo-main">
      <div class="topo-graph">
        ${vis.mode === 'table'
          ? html`<${NodeTable} nodes=${vis.nodes} found=${vis.found} onSelect=${onSelect} caption=${vis.nodes.length > MAX_DRAWN_NODES ? `${vis.nodes.length} nodes: too many to draw, shown as a table (use Group or Find to narrow)` : 'Nodes'} />`
          : html`<${GraphCanvas} nodes=${vis.nodes} edges=${vis.edges} found=${vis.found} label=${p.label} sel=${p.sel} onSelect=${onSelect}
              fitKey=${p.window + p.view + p.group + p.hideHealthy + vis.mode} layoutKey=${p.view + vis.mode} marks=${marks} acting=${acting} />
            ${vis.mode === 'grouped' ? html`<p class="note">${graph.nodes.size} nodes: shown grouped by group. Pick a group to see its nodes.</p>` : ''}
            <${Legend} />
            <details class="node-list" open=${listOpen} onToggle=${(e) => setListOpen(e.currentTarget.open)}><summary>Nodes as a list (${vis.nodes.length})</summary>
              <ul data-testid="node-list">${!listOpen ? '' : vis.nodes.map((n) => html`<li key=${n.id}><button type="button" class="linklike" data-node=${n.id} onClick=${() => onSelect('node:' + n.id)}>
                ${n.id}</button> <${HealthBadge} h=${n.health} /> ${n.kind !== 'service' ? html`<span class="tag">${n.kind}</span>` : ''} ${marks.has(n.service || n.id) ? html`<span class="tag">policies: ${marks.get(n.service || n.id).mode === 'enforce' ? 'enforced' : 'observe only'}</span>` : ''} ${fmtRate(n.rps)} rps, ${fmtPct(n.error_rate)} errors, p99 ${fmtMs(n.p99_ms)}</li>`)}</ul>
            </details>`}
      </div>
      ${p.sel ? html`<${SidePanel} sel=${p.sel} graph=${graph} pol=${pol} tick=${tick} view=${p.view} window=${p.t.absolute ? p.t.secs + 's' : p.window} at=${p.at} onClose=${() => onSelect('')} />` : ''}
    </div>
  </section>`;
}

function Legend() {
  return html`<div class="legend" aria-label="Legend">
    <span><span class="lg-dot healthy" aria-hidden="true">✓</span> healthy</span>
    <span><span class="lg-dot degraded" aria-hidden="true">!</span> degraded (dashed edge)</span>
    <span><span class="lg-dot failing" aria-hidden="true">✖</span> failing (double border, dashed edge)</span>
    <span><span class="lg-dot no_data" aria-hidden="true">?</span> no data</span>
    <span>◆ enforced policies · ◇ observe-only policies · ⇉ split: a route splits the callee's traffic between versions</span>
    <span>⚑ a guard acts on the service (highlighted), its callers' edges say how it moved their traffic</span>
    <span>● service · ◌ unmeshed (dashed border) · ⬡ external · ⛁ database · ▲ user · dotted edge: seen in spans only</span>
    <span>🔒 mTLS edge · 🔓 partly mTLS (share of requests)</span>
  </div>`;
}

export { withQuery, onLinkClick };
