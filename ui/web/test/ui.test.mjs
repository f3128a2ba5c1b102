// Browser tests: Debian's Chromium driven by playwright-core against a
// server (fixture by default; the real `meshscope demo` with
// MESHSCOPE_UI_TARGET=demo). Screenshots go to ui/test-artifacts/.
import { test, before, beforeEach, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, watchPage } from './browser.mjs';
import { startTarget, demoServices } from './target.mjs';
import { startFixtureServer } from './fixture-server.mjs';
import { fmtRate, fmtPct, fmtMs } from '../src/api.js';
import { edgeTLSMark, mtlsShare } from '../src/mtls.js';
import { coverageShort } from '../src/timeparams.js';

const artifacts = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test-artifacts');
mkdirSync(artifacts, { recursive: true });

let target, browser, page, problems;
let crashed = false; // the shared page's renderer crashed (openPage)

before(async () => {
  target = await startTarget({ streamInterval: 700, addNodeAfter: 4 });
  browser = await launch();
  await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: target.url });
  problems = [];
  await openPage();
});

// openPage opens the page the tests share. A crashed renderer fails the test
// it happened in and is recorded in problems (which the script-errors test
// asserts empty); the next test gets a new page, so one crash is not reported
// as the failure of every later test.
async function openPage() {
  page = await browser.context.newPage();
  watchPage(page, problems);
  page.on('crash', () => {
    crashed = true;
    problems.push('crash: the renderer of the shared page crashed');
  });
}

beforeEach(async () => {
  if (!crashed) return;
  crashed = false;
  await openPage();
});

// api reads a JSON API of the target directly (to compare the page with).
async function api(path) {
  const r = await fetch(target.url + path);
  assert.equal(r.status, 200, `${path}: HTTP ${r.status}`);
  return r.json();
}

// waitCovered waits (up to a minute) until the target's graph API has data
// for the last secs seconds, as a demo younger than that has not.
async function waitCovered(secs) {
  for (let i = 0; i < 60; i++) {
    if (!coverageShort((await api(`/api/mesh/graph?window=${secs}s`)).covered_seconds, secs)) return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

after(async () => {
  if (browser) await browser.close();
  if (target) await target.close();
}, { timeout: 60000 });

const shot = (name) => page.screenshot({ path: join(artifacts, name + '.png') });

async function nodeIDs() {
  return page.evaluate(() => (window.meshscope && window.meshscope.cy ? window.meshscope.cy.nodes().map((n) => n.id()) : []));
}

async function waitForNodes(ids, timeout = 20000) {
  await page.waitForFunction((want) => {
    const cy = window.meshscope && window.meshscope.cy;
    return cy && want.every((id) => cy.getElementById(id).nonempty());
  }, ids, { timeout });
}

// clickNode clicks a node where Cytoscape drew it on the canvas.
async function clickNode(id) {
  const pt = await page.evaluate((id) => {
    const cy = window.meshscope.cy;
    const n = cy.getElementById(id);
    const box = cy.container().getBoundingClientRect();
    const p = n.renderedPosition();
    return { x: box.left + p.x, y: box.top + p.y };
  }, id);
  await page.mouse.click(pt.x, pt.y);
}

test('the topology renders the demo services with health cues', async () => {
  await page.goto(target.url + '/');
  await page.waitForURL(/\/topology/);
  await waitForNodes(demoServices);
  await page.locator('.node-list summary').click();
  await page.locator('[data-testid=node-list] li').first().waitFor();
  const list = await page.locator('[data-testid=node-list]').textContent();
  for (const s of demoServices) assert.ok(list.includes(s), `node list lacks ${s}`);
  // Health is given as words too, not by colour alone.
  assert.match(list, /healthy|degraded|failing/);
  const labels = await page.evaluate(() => window.meshscope.cy.nodes().map((n) => n.data('label')).join('\n'));
  assert.match(labels, /[✓!✖?] web/);
  assert.match(await page.locator('[data-testid=coverage]').textContent(), /Meshed services/);
  // The callback returns nothing: cy.fit returns the Cytoscape core, and
  // serialising that object graph back to the test costs seconds of renderer
  // time and memory (it once crashed the renderer).
  await page.evaluate(() => { window.meshscope.cy.fit(undefined, 30); });
  await shot('topology');
});

test('clicking a node opens its RED charts', async () => {
  await page.goto(target.url + '/topology?window=5m');
  await waitForNodes(['checkout']);
  await page.waitForTimeout(300);
  // The slowest traces are the server's sort over the window, not a sort of
  // the newest few.
  const slowReq = page.waitForRequest((r) => r.url().includes('/api/mesh/traces?') && new URL(r.url()).searchParams.get('sort') === 'longest');
  await clickNode('checkout');
  assert.equal(new URL((await slowReq).url()).searchParams.get('service'), 'checkout');
  const panel = page.locator('[data-testid=side-panel]');
  await panel.locator('h2', { hasText: 'checkout' }).waitFor();
  assert.match(page.url(), /sel=node%3Acheckout/);
  for (const c of ['chart-rate', 'chart-errors', 'chart-latency']) {
    await panel.locator(`[data-testid=${c}] canvas`).first().waitFor({ timeout: 15000 });
    assert.equal(await panel.locator(`[data-testid=${c}] .error`).count(), 0, `${c} shows an error`);
  }
  await panel.locator('[data-testid=top-routes] table, [data-testid=top-routes] p.muted:not(:has-text("loading"))').first().waitFor({ timeout: 15000 });
  if (target.kind === 'fixture') await panel.locator('[data-testid=slow-traces] li a').first().waitFor({ timeout: 15000 });
  await shot('topology-node-panel');
});

test('the stream updates the graph without a reload', async () => {
  await page.goto(target.url + '/topology');
  await waitForNodes(demoServices);
  await page.evaluate(() => (window.__notReloaded = true));
  const seq0 = Number(await page.locator('[data-testid=stream-status]').getAttribute('data-seq'));
  await page.waitForFunction((s) => Number(document.querySelector('[data-testid=stream-status]').dataset.seq) >= s + 2, seq0, { timeout: 30000 });
  if (target.kind === 'fixture') {
    // The fixture adds a node after a few diffs: it must appear in place,
    // and the nodes already drawn must not move.
    const before = await page.evaluate(() => Object.fromEntries(window.meshscope.cy.nodes().map((n) => [n.id(), n.position()])));
    await waitForNodes(['recommendations']);
    const afterPos = await page.evaluate(() => Object.fromEntries(window.meshscope.cy.nodes().map((n) => [n.id(), n.position()])));
    for (const [id, p] of Object.entries(before)) assert.deepEqual(afterPos[id], p, `${id} moved`);
  }
  assert.equal(await page.evaluate(() => window.__notReloaded), true, 'page reloaded');
  assert.equal(await page.locator('[data-testid=stream-status]').getAttribute('data-state'), 'live');
});

test('a trace search finds a trace whose waterfall shows every hop', async () => {
  // A checkout crosses web → checkout → payments.
  await page.goto(target.url + '/traces');
  await page.waitForFunction(() => [...document.querySelector('select[name=service]').options].some((o) => o.value === 'payments'), null, { timeout: 20000 });
  await page.selectOption('select[name=service]', 'payments');
  await page.selectOption('select[name=lookback]', '15m');
  await page.click('button[type=submit]');
  await page.waitForURL(/service=payments/);
  const results = page.locator('[data-testid=trace-results] li');
  await results.first().waitFor({ timeout: 20000 });
  assert.ok((await results.count()) > 0);
  await shot('traces-search');
  // The trace with the most spans covers the most hops.
  const found = await page.locator('[data-testid=trace-results] a').evaluateAll((as) => as.map((a) => ({
    href: a.getAttribute('href'),
    spans: Number((a.textContent.match(/(\d+) spans/) || [])[1] || 0),
    services: a.querySelector('.tr-meta').textContent.split('·')[1].split(',').map((s) => s.trim()),
  })));
  found.sort((a, b) => b.spans - a.spans);
  const pick = found[0];
  for (const s of ['web', 'checkout', 'payments']) assert.ok(pick.services.includes(s), `trace lacks ${s}: ${pick.services.join(', ')}`);
  await page.click(`[data-testid=trace-results] a[href="${pick.href}"]`);
  await page.waitForURL(/\/traces\/[0-9a-f]+/);
  await page.locator('[data-testid=waterfall] .wf-row').first().waitFor();
  assert.equal(Number(await page.locator('[data-testid=waterfall]').getAttribute('data-rows')), pick.spans);
  const services = new Set(await page.locator('[data-testid=waterfall] .wf-row').evaluateAll((rs) => rs.map((r) => r.dataset.service)));
  for (const s of pick.services) assert.ok(services.has(s), `waterfall lacks a span of ${s} (has ${[...services].join(', ')})`);
  // Rows name the span kind and the peer: checkout's call reads
  // "checkout → payments POST … (client)".
  const call = await page.locator('[data-testid=waterfall] .wf-row[data-service=checkout][data-kind=client] .span-name').first().textContent();
  assert.match(call, /checkout → payments \S+.*\(client\)/, call);
  const served = await page.locator('[data-testid=waterfall] .wf-row[data-service=payments][data-kind=server] .span-name').first().textContent();
  assert.match(served, /checkout → payments \S+.*\(server\)/, served);
  // Span details: attributes of the clicked span.
  await page.locator('[data-testid=waterfall] .wf-row[data-service=payments] .span-name').first().click();
  await page.locator('[data-testid=span-details]').waitFor();
  assert.match(await page.locator('[data-testid=span-details]').textContent(), /Attributes/);
  assert.match(page.url(), /span=/);
  await shot('trace-waterfall');
  // Back returns to the result list (span selection replaces, not pushes).
  await page.goBack();
  await page.waitForURL(/\/traces\?service=payments/);
  await results.first().waitFor();
});

test('a deep link restores the view and the back button works', async () => {
  // hide=healthy only on the fixture: the live demo may have no unhealthy node.
  const hide = target.kind === 'fixture' ? '&hide=healthy' : '';
  const deep = '/topology?window=5m&view=version&label=p99' + hide + '&find=' + encodeURIComponent('error_rate > 1%');
  await page.goto(target.url + deep);
  assert.equal(await page.locator('select').nth(0).inputValue(), '5m');
  assert.equal(await page.locator('select').nth(1).inputValue(), 'version');
  assert.equal(await page.locator('select').nth(2).inputValue(), 'p99');
  assert.equal(await page.locator('input[type=checkbox]').first().isChecked(), target.kind === 'fixture');
  assert.equal(await page.locator('input[type=search]').inputValue(), 'error_rate > 1%');
  await page.waitForFunction(() => window.meshscope && window.meshscope.cy && window.meshscope.cy.nodes().length > 0, null, { timeout: 20000 });
  const ids = await nodeIDs();
  assert.ok(ids.every((id) => id.includes('@') || !/^(web|cart|catalog)$/.test(id)), `version view shows ${ids.join(', ')}`);
  const labels = await page.evaluate(() => window.meshscope.cy.edges().map((e) => e.data('label')));
  assert.ok(labels.length > 0 && labels.every((l) => /^(🔒 · |🔓 [^·]+ · )?p99/.test(l)), `edge labels ${labels.join(', ')}`);
  // The side panel is part of the URL too.
  const sel = ids.find((id) => id.startsWith('payments')) || ids[0];
  await page.goto(target.url + deep + '&sel=' + encodeURIComponent('node:' + sel));
  await page.locator('[data-testid=side-panel] h2', { hasText: sel }).waitFor();
  // Services table: sort in the URL.
  await page.click('nav a[href="/services"]');
  await page.locator('[data-testid=services-table] tbody tr').first().waitFor();
  await page.click('button.sort:has-text("p99")');
  await page.waitForURL(/sort=p99/);
  await page.reload();
  await page.locator('[data-testid=services-table] tbody tr').first().waitFor();
  assert.match(await page.locator('th[aria-sort=descending]').textContent(), /p99/);
  const vals = await page.locator('[data-testid=services-table] tbody tr').evaluateAll((rs) => rs.map((r) => Number(r.dataset.sortValue)));
  assert.ok(vals.length > 1 && vals.every((v, i) => i === 0 || vals[i - 1] >= v), `rows not sorted by p99: ${vals}`);
  await shot('services');
  await page.goBack();
  await page.goBack();
  await page.waitForURL(/\/topology\?.*sel=/);
  await page.locator('[data-testid=side-panel] h2', { hasText: sel }).waitFor();
  assert.equal(await page.locator('select').nth(0).inputValue(), '5m');
});

test('the keyboard reaches node details, and edges have details too', async () => {
  await page.goto(target.url + '/topology');
  await waitForNodes(['payments']);
  await page.locator('.node-list summary').focus();
  await page.keyboard.press('Enter');
  await page.locator('[data-node=payments]').focus();
  await page.keyboard.press('Enter');
  await page.locator('[data-testid=side-panel] h2', { hasText: 'payments' }).waitFor();
  const edge = await page.evaluate(() => window.meshscope.cy.edges().filter((e) => e.target().id() === 'payments')[0].id());
  await page.goto(target.url + '/topology?sel=' + encodeURIComponent('edge:' + edge));
  await page.locator('[data-testid=side-panel] h2', { hasText: '→ payments' }).waitFor({ timeout: 20000 });
  await page.locator('[data-testid=side-panel] [data-testid=chart-rate] canvas').waitFor({ timeout: 15000 });
});

test('a 5,000-span trace renders with virtualised rows', async (t) => {
  if (target.kind !== 'fixture') return t.skip('the big trace exists only in the fixture');
  await page.goto(target.url + '/traces/' + 'b'.repeat(32));
  const wf = page.locator('[data-testid=waterfall]');
  await wf.locator('.wf-row').first().waitFor();
  assert.equal(await wf.getAttribute('data-rows'), '5000');
  const drawn = await wf.locator('.wf-row').count();
  assert.ok(drawn < 200, `${drawn} rows in the DOM`);
  await page.locator('.wf-scroll').evaluate((el) => (el.scrollTop = el.scrollHeight));
  await page.waitForFunction(() => [...document.querySelectorAll('.wf-row')].some((r) => Number(r.style.top.replace('px', '')) >= 4999 * 26));
});

test('meshes above 1,000 nodes fall back to the grouped view', async () => {
  const big = await startFixtureServer({ synthetic: 1500, streamInterval: 1000 });
  try {
    await page.goto(big.url + '/topology');
    await page.locator('text=shown grouped by group').waitFor({ timeout: 20000 });
    const n = await page.evaluate(() => window.meshscope.cy.nodes().length);
    assert.ok(n > 0 && n <= 1000, `${n} nodes drawn`);
    await page.goto(big.url + '/topology?mode=table');
    await page.locator('[data-testid=node-table]').waitFor();
  } finally {
    await page.goto('about:blank');
    await big.close();
  }
});

test('big graphs leave out unreadable labels and bring them back when zoomed in', async () => {
  const big = await startFixtureServer({ synthetic: 1000, streamInterval: 1000 });
  try {
    await page.goto(big.url + '/topology');
    await page.waitForFunction(() => window.meshscope && window.meshscope.firstRender > 0 && window.meshscope.cy.nodes().length === 1000, null, { timeout: 30000 });
    const fit = await page.evaluate(() => {
      const cy = window.meshscope.cy;
      return { zoom: cy.zoom(), labels: cy.nodes().filter((n) => n.data('label')).length, pos: cy.nodes().slice(0, 50).map((n) => n.position()) };
    });
    assert.ok(fit.zoom < 0.55, `fit zoom ${fit.zoom}`);
    assert.equal(fit.labels, 0, 'labels at a zoom where they cannot be read');
    const zoomTo = (level) => page.evaluate((z) => {
      const cy = window.meshscope.cy;
      cy.zoom({ level: z, renderedPosition: { x: cy.width() / 2, y: cy.height() / 2 } });
    }, level);
    await zoomTo(0.58);
    await page.waitForFunction(() => window.meshscope.cy.nodes().every((n) => /^[✓!✖?] \S+$/.test(n.data('label'))), null, { timeout: 15000 });
    await zoomTo(1);
    await page.waitForFunction(() => window.meshscope.cy.nodes().every((n) => /^[✓!✖?] \S+[^]*rps/.test(n.data('label'))), null, { timeout: 15000 });
    const pos = await page.evaluate(() => window.meshscope.cy.nodes().slice(0, 50).map((n) => n.position()));
    assert.deepEqual(pos, fit.pos, 'zooming moved nodes');
  } finally {
    await page.goto('about:blank');
    await big.close();
  }
});

test('the first paint comes from the HTTP snapshot when the stream does not deliver', async () => {
  const p = await browser.context.newPage();
  const pageProblems = watchPage(p);
  try {
    // The stream connects to nothing and never sends a frame.
    await p.routeWebSocket(/\/api\/mesh\/graph\/stream/, () => {});
    await p.goto(target.url + '/topology');
    await p.waitForFunction(() => window.meshscope && window.meshscope.cy && window.meshscope.cy.nodes().length > 0, null, { timeout: 20000 });
    assert.equal(await p.locator('[data-testid=stream-status]').getAttribute('data-seq'), '0', 'a stream frame arrived');
    const summary = await p.locator('.node-list summary').textContent();
    const n = Number((/\((\d+)\)/.exec(summary) || [])[1]);
    assert.ok(n > 0, summary);
    await p.locator('.node-list summary').click();
    // The list renders its items after the toggle event, not at the click.
    await p.locator('[data-testid=node-list] li').first().waitFor();
    const list = await p.locator('[data-testid=node-list]').textContent();
    for (const s of demoServices) assert.ok(list.includes(s), `node list lacks ${s}`);
    assert.deepEqual(pageProblems, []);
  } finally {
    await p.close();
  }
});

test('services: adaptive success rates, replay at a time and over a range, and the coverage note', async () => {
  await page.goto(target.url + '/services');
  await page.locator('[data-testid=services-table] tbody tr').first().waitFor({ timeout: 20000 });
  const opts = await page.locator('select').first().locator('option').evaluateAll((os) => os.map((o) => o.value));
  for (const w of ['1m', '5m', '15m', '1h', '6h', '1d', '7d']) assert.ok(opts.includes(w), `no ${w} window (${opts})`);
  // Any service with errors reads below 100 %, shown with enough digits.
  const g = await api('/api/mesh/graph?window=1m');
  const cells = Object.fromEntries(await page.locator('[data-testid=services-table] tbody tr').evaluateAll((rs) => rs.map((r) => [r.dataset.service, r.querySelectorAll('td')[3].textContent])));
  let checked = 0;
  for (const n of g.nodes) {
    if (!(n.error_rate > 0) || !cells[n.id] || cells[n.id] === '–') continue;
    checked++;
    assert.notEqual(cells[n.id], '100%', `${n.id} has error rate ${n.error_rate} but reads 100%`);
    if (n.health === 'degraded' || n.health === 'failing') assert.ok(parseFloat(cells[n.id]) <= 99.9, `${n.id} is ${n.health} but reads ${cells[n.id]}`);
  }
  if (target.kind === 'fixture') {
    assert.equal(cells.web, '99.60%');
    assert.equal(cells.catalog, '99.983%');
    assert.ok(checked >= 3);
  }
  // Replay at a time: the API gets at=, and the page says so. The time is
  // 30 s back, so a young demo must first have data from before it.
  await waitCovered(45);
  const at = Math.floor(Date.now() / 1000) - 30;
  const replayReq = page.waitForRequest((r) => r.url().includes('/api/mesh/graph?') && new URL(r.url()).searchParams.get('at') === String(at));
  await page.goto(`${target.url}/services?window=5m&at=${at}`);
  await replayReq;
  await page.locator('[data-testid=services-table] tbody tr').first().waitFor({ timeout: 20000 });
  assert.match(await page.locator('[data-testid=services-asof]').textContent(), /replay: 5m up to/);
  // An absolute range: at=<to>, window=<to-from>.
  const to = at, from = at - 5400;
  const rangeReq = page.waitForRequest((r) => {
    const q = new URL(r.url()).searchParams;
    return r.url().includes('/api/mesh/graph?') && q.get('at') === String(to) && q.get('window') === '5400s';
  });
  await page.goto(`${target.url}/services?from=${from}&to=${to}`);
  await rangeReq;
  await page.locator('[data-testid=services-table] tbody tr').first().waitFor({ timeout: 20000 });
  assert.match(await page.locator('select').first().inputValue(), /range/);
  // The note when the data is shorter than the window.
  await page.goto(target.url + '/services?window=1h');
  await page.locator('[data-testid=services-table] tbody tr').first().waitFor({ timeout: 20000 });
  const g1h = await api('/api/mesh/graph?window=1h');
  if (target.kind === 'fixture' || (typeof g1h.covered_seconds === 'number' && g1h.covered_seconds < 3000)) {
    const note = await page.locator('[data-testid=coverage-note]').textContent({ timeout: 15000 });
    assert.match(note, /data covers only the last \S+.* of the 1h window/);
    if (target.kind === 'fixture') assert.equal(note, 'data covers only the last 10m of the 1h window');
  }
  // A covered window has no note. A demo younger than a minute is not yet
  // covered (the note is then right): wait until the API says it is.
  await waitCovered(60);
  await page.goto(target.url + '/services?window=1m');
  await page.locator('[data-testid=services-table] tbody tr').first().waitFor({ timeout: 20000 });
  assert.equal(await page.locator('[data-testid=coverage-note]').count(), 0, 'a note on a covered window');
});

test('topology: long windows are polled, ranges replayed, short data noted', async () => {
  const req6h = page.waitForRequest((r) => r.url().includes('/api/mesh/graph?') && new URL(r.url()).searchParams.get('window') === '6h');
  await page.goto(target.url + '/topology?window=6h');
  await req6h;
  await waitForNodes(['web']);
  assert.equal(await page.locator('[data-testid=stream-status]').getAttribute('data-state'), 'polling');
  const g = await api('/api/mesh/graph?window=6h');
  if (target.kind === 'fixture' || (typeof g.covered_seconds === 'number' && g.covered_seconds < 20000)) {
    assert.match(await page.locator('[data-testid=coverage-note]').textContent({ timeout: 15000 }), /data covers only the last \S+.* of the 6h window/);
  }
  const to = Math.floor(Date.now() / 1000) - 20, from = to - 900;
  const rangeReq = page.waitForRequest((r) => {
    const q = new URL(r.url()).searchParams;
    return r.url().includes('/api/mesh/graph?') && q.get('at') === String(to) && q.get('window') === '900s';
  });
  await page.goto(`${target.url}/topology?from=${from}&to=${to}`);
  await rangeReq;
  await page.waitForFunction(() => document.querySelector('[data-testid=stream-status]').dataset.state === 'replay', null, { timeout: 20000 });
});

test('the user node shows its outgoing traffic', async () => {
  const g = await api('/api/mesh/graph?window=1m');
  const user = g.nodes.find((n) => n.kind === 'user');
  assert.ok(user, 'no user node');
  await page.goto(target.url + '/topology?sel=' + encodeURIComponent('node:' + user.id));
  await waitForNodes([user.id]);
  const label = await page.evaluate((id) => window.meshscope.cy.getElementById(id).data('label'), user.id);
  assert.match(label, /rps · .* err/, label);
  if (target.kind === 'fixture') assert.match(label, /\b(19|20|21)\.\d rps/, label);
  const panel = page.locator('[data-testid=side-panel]');
  await panel.locator('[data-testid=chart-rate] canvas').waitFor({ timeout: 15000 });
  assert.match(await panel.locator('[data-testid=chart-rate] [data-testid=promql-text]').textContent(), /source_service="unknown"/);
});

test('each panel copies its PromQL with the direction that counts a request once', async () => {
  const g = await api('/api/mesh/graph?window=1m');
  const meshed = g.nodes.find((n) => n.kind === 'service' && n.rps > 0);
  const outside = g.nodes.find((n) => n.kind === 'unmeshed' || n.kind === 'external');
  const copied = async (id, chart) => {
    // Paused: a live table's request follows the graph's time frame by frame.
    await page.goto(target.url + '/topology?paused=1&sel=' + encodeURIComponent('node:' + id));
    const box = page.locator(`[data-testid=side-panel] [data-testid=${chart}] [data-testid=promql]`);
    await box.locator('button.copy').click();
    await box.locator('[role=status]', { hasText: 'copied' }).waitFor({ timeout: 10000 });
    const clip = await page.evaluate(() => navigator.clipboard.readText());
    assert.equal(clip, await box.locator('[data-testid=promql-text]').textContent());
    return clip;
  };
  const q = await copied(meshed.id, 'chart-rate');
  assert.equal(q, `sum(rate(mesh_requests_total{direction="inbound",destination_service="${meshed.service || meshed.id}"}[1m]))`);
  const lat = await copied(meshed.id, 'chart-latency');
  assert.equal(lat.split('\n').length, 3);
  assert.ok(lat.split('\n').every((l) => l.includes('direction="inbound"')), lat);
  // Tables copy the native API request they show.
  const routes = await copied(meshed.id, 'top-routes');
  assert.match(routes, new RegExp(`^/api/mesh/routes\\?window=1m&service=${meshed.service || meshed.id}&at=`), routes);
  if (outside) assert.match(await copied(outside.id, 'chart-errors'), /direction="outbound"/);
});

test('trace search sorts on the server over the whole range', async () => {
  const search = page.waitForRequest((r) => r.url().includes('/api/mesh/traces?') && new URL(r.url()).searchParams.get('sort') === 'longest');
  // A range ending in the past: traces still arriving for "now" would
  // make the page's answer and the same request a moment later differ.
  let end;
  for (const deadline = Date.now() + 90000; ; await new Promise((r) => setTimeout(r, 2000))) {
    end = Math.floor(Date.now() / 1000) - 30;
    if ((await api(`/api/mesh/traces?service=web&limit=1&start=${end - 3600}&end=${end}`)).traces.length) break;
    assert.ok(Date.now() < deadline, 'no trace of web older than 30 s');
  }
  await page.goto(target.url + `/traces?service=web&lookback=1h&sort=longest&end=${end}`);
  const req = await search;
  const results = page.locator('[data-testid=trace-results] li');
  await results.first().waitFor({ timeout: 20000 });
  // The page keeps the server's order.
  const shown = await results.evaluateAll((ls) => ls.map((l) => l.dataset.trace));
  const body = await api(new URL(req.url()).pathname + new URL(req.url()).search);
  assert.deepEqual(shown, body.traces.map((t) => t.trace_id));
  if (target.kind === 'fixture') {
    // The longest trace is the oldest: not among the 20 newest.
    const all = await api('/api/mesh/traces?service=web&limit=100&sort=newest');
    const longest = all.traces.reduce((a, b) => (b.duration_ms > a.duration_ms ? b : a));
    assert.ok(all.traces.findIndex((t) => t.trace_id === longest.trace_id) >= 20);
    assert.equal(shown[0], longest.trace_id);
  }
  const sorts = await page.locator('select[name=sort] option').evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual(sorts, ['newest', 'longest', 'errors']);
});

test('the Services page links to traces for every kind of service', async () => {
  const g = await api('/api/mesh/graph?window=1m');
  const unmeshed = g.nodes.find((n) => n.kind === 'unmeshed');
  if (!unmeshed) return;
  await page.goto(target.url + '/services');
  const link = page.locator(`[data-testid=services-table] tr[data-service="${unmeshed.id}"] a`, { hasText: 'traces' });
  await link.click();
  await page.waitForURL(/\/traces\?service=/);
  await page.waitForFunction((s) => document.querySelector('select[name=service]').value === s, unmeshed.service || unmeshed.id, { timeout: 20000 });
  await page.locator('[data-testid=result-count]').waitFor({ timeout: 20000 });
  if (target.kind === 'fixture') {
    assert.match(await page.locator('select[name=service] option:checked').textContent(), /\(unmeshed\)/);
    assert.ok(await page.locator('[data-testid=trace-results] li').count() > 0, 'no traces of the unmeshed service');
  }
});

test('waterfall rows read caller → callee, operation and kind', async (t) => {
  if (target.kind !== 'fixture') return t.skip('exact names only in the fixture (the demo is checked in the trace search test)');
  await page.goto(target.url + '/traces/' + (0xabc000).toString(16).padStart(32, '0'));
  await page.locator('[data-testid=waterfall] .wf-row').first().waitFor();
  const rows = await page.locator('[data-testid=waterfall] .wf-row .span-name').allTextContents();
  for (const want of ['web → cart GET /cart (client)', 'web → cart GET /cart (server)', 'web → reviews GET /reviews (client)', 'unknown → web GET / (server)']) {
    assert.ok(rows.some((r) => r.replace(/^[✖◆ ]+/, '').trim() === want), `no row "${want}" in ${rows.join(' | ')}`);
  }
});

// panelFigures reads what the side panel prints: the header's figures and
// the rows of one of its tables (once the table has loaded at the graph's
// time), as text.
async function panelFigures(testid) {
  const panel = page.locator('[data-testid=side-panel]');
  await panel.locator(`[data-testid=${testid}]:not([data-loading=true]) table`).waitFor({ timeout: 20000 });
  return panel.evaluate((el, testid) => ({
    header: Object.fromEntries([...el.querySelectorAll('dl.stats > div')].map((d) => [d.querySelector('dt').textContent, d.querySelector('dd').textContent])),
    rows: [...el.querySelectorAll(`[data-testid=${testid}] tbody tr`)].map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)),
    url: el.querySelector(`[data-testid=${testid}]`).dataset.url,
  }), testid);
}
const printed = (x) => [fmtRate(x.rps), fmtPct(x.error_rate), fmtMs(x.p99_ms)];
// A panel table's row: the figures and the share over mTLS.
const printedRow = (x) => [...printed(x), fmtPct(mtlsShare(x))];
const headerOf = (x) => ({ 'requests/s': fmtRate(x.rps), errors: fmtPct(x.error_rate), p50: fmtMs(x.p50_ms), p95: fmtMs(x.p95_ms), p99: fmtMs(x.p99_ms) });
const sumRPS = (rows) => rows.reduce((s, r) => s + r.rps, 0);

test('side panel route rows add up to the header', async () => {
  for (const sel of ['node:checkout', 'edge:checkout->payments', 'node:' + (target.kind === 'fixture' ? 'user' : 'unknown')]) {
    await page.goto(target.url + '/topology?window=5m&paused=1&sel=' + encodeURIComponent(sel));
    const f = await panelFigures('top-routes');
    const texts = [...f.rows.map((r) => r[1]), f.header['requests/s']];
    const rps = texts.slice(0, -1).map(parseFloat);
    const header = parseFloat(texts[texts.length - 1]);
    // Every figure is rounded to its printed digits (19.9, 8.07): the printed
    // sum can be off by half a unit of the last digit of each.
    const halfUnit = (t) => 0.5 * 10 ** -((String(t).split('.')[1] || '').replace(/\D.*$/, '').length);
    const slack = texts.reduce((s, t) => s + halfUnit(t), 0);
    assert.ok(Math.abs(rps.reduce((a, b) => a + b, 0) - header) <= slack + 1e-9, `${sel}: routes ${rps.join(' + ')} vs header ${header}`);
    if (target.kind === 'fixture') {
      assert.equal(f.rows.length, 3, sel);
      // The slowest route's p99 is the subject's (fixture routes: 100/50/25 % of it).
      assert.equal(f.rows[0][3], f.header.p99, sel);
    }
    // The rows are the subject's routes at the graph's own time.
    assert.match(f.url, /[?&]at=/, f.url);
  }
});

test('one instant: graph, side panel, routes and Services table print the RED engine figures', async () => {
  const at = Math.floor(Date.now() / 1000) - 15;
  const q = `window=1m&at=${at}`;
  const [graph, services, edges, routes, edgeRoutes, userEdges] = await Promise.all([
    api(`/api/mesh/graph?${q}`), api(`/api/mesh/services?${q}`), api(`/api/mesh/edges?${q}`),
    api(`/api/mesh/routes?${q}&service=payments`), api(`/api/mesh/routes?${q}&service=payments&source=checkout`), api(`/api/mesh/edges?${q}&source=unknown`),
  ]);
  const pay = graph.nodes.find((n) => n.id === 'payments');
  const edge = graph.edges.find((e) => e.id === 'checkout->payments');
  const user = graph.nodes.find((n) => n.kind === 'user');
  assert.ok(pay && edge && user && pay.rps > 0, 'the graph lacks payments, checkout → payments or the user node');
  // The native tables are the graph's numbers.
  const svc = services.services.find((r) => r.service === 'payments');
  const edgeRow = edges.edges.find((r) => r.source === 'checkout' && r.destination === 'payments');
  assert.deepEqual(printed(svc), printed(pay));
  assert.deepEqual(printedRow(edgeRow), printedRow(edge));
  assert.equal(fmtRate(sumRPS(routes.routes)), fmtRate(pay.rps));
  assert.equal(fmtRate(sumRPS(edgeRoutes.routes)), fmtRate(edge.rps));
  assert.equal(fmtRate(sumRPS(userEdges.edges)), fmtRate(user.rps));

  // The graph: node label, node list, edge label; the node's panel.
  await page.goto(`${target.url}/topology?${q}&sel=${encodeURIComponent('node:payments')}`);
  await waitForNodes(['payments', 'checkout']);
  await page.waitForFunction(() => document.querySelector('[data-testid=stream-status]').dataset.state === 'replay', null, { timeout: 20000 });
  const labels = await page.evaluate(() => ({
    node: window.meshscope.cy.getElementById('payments').data('label'),
    edge: window.meshscope.cy.getElementById('checkout->payments').data('label'),
  }));
  assert.ok(labels.node.endsWith(`\n${fmtRate(pay.rps)} rps · ${fmtPct(pay.error_rate)} err`), labels.node);
  assert.equal(labels.edge, [edgeTLSMark(edge), `${fmtRate(edge.rps)} rps`].filter(Boolean).join(' · '));
  await page.locator('.node-list summary').click();
  const item = await page.locator('[data-testid=node-list] li', { has: page.locator('[data-node=payments]') }).textContent();
  assert.ok(item.includes(`${fmtRate(pay.rps)} rps, ${fmtPct(pay.error_rate)} errors, p99 ${fmtMs(pay.p99_ms)}`), item);
  let f = await panelFigures('top-routes');
  assert.deepEqual(f.header, headerOf(pay));
  assert.deepEqual(f.rows.map((r) => r.slice(1)), routes.routes.sort((a, b) => b.rps - a.rps).map(printedRow));
  await shot('topology-replay-node-panel');

  // The edge's panel and its routes.
  await page.goto(`${target.url}/topology?${q}&sel=${encodeURIComponent('edge:checkout->payments')}`);
  f = await panelFigures('top-routes');
  assert.deepEqual(f.header, headerOf(edge));
  assert.deepEqual(f.rows.map((r) => r.slice(1)), edgeRoutes.routes.sort((a, b) => b.rps - a.rps).map(printedRow));
  // Its versions: the version view's edges between the two services.
  const vg = await api(`/api/mesh/graph?${q}&view=version`);
  const vsvc = new Map(vg.nodes.map((n) => [n.id, n.service || n.id]));
  const vedges = vg.edges.filter((e) => vsvc.get(e.source) === 'checkout' && vsvc.get(e.target) === 'payments');
  assert.ok(vedges.length > 0, 'no version-view edge checkout → payments');
  assert.equal(fmtRate(sumRPS(vedges)), fmtRate(edge.rps));
  const fv = await panelFigures('versions');
  assert.deepEqual(fv.rows.map((r) => r.slice(1)), vedges.sort((a, b) => b.rps - a.rps).map(printedRow));

  // The user node: its outgoing traffic, and its destinations.
  await page.goto(`${target.url}/topology?${q}&sel=${encodeURIComponent('node:' + user.id)}`);
  f = await panelFigures('versions');
  assert.deepEqual(f.header, headerOf(user));
  assert.deepEqual(f.rows.map((r) => r.slice(1)), userEdges.edges.sort((a, b) => b.rps - a.rps).map(printedRow));
  assert.ok(user.rps > 0, 'the user node shows no outgoing rate');

  // The Services table row.
  await page.goto(`${target.url}/services?${q}`);
  const row = page.locator('[data-testid=services-table] tr[data-service=payments]');
  await row.waitFor({ timeout: 20000 });
  const cells = await row.locator('td').allTextContents();
  assert.deepEqual(cells.slice(3, 8), [fmtPct(svc.success_rate), fmtRate(svc.rps), fmtMs(svc.p50_ms), fmtMs(svc.p95_ms), fmtMs(svc.p99_ms)]);
});

test('the SLOs page sorts by state, shows budget bars and opens an SLO with its burn rates', async () => {
  await page.goto(target.url + '/topology');
  await page.click('nav a[href="/slos"]');
  await page.locator('[data-testid=slos-table] tbody tr').first().waitFor();
  // payments burns its budget (2 % errors against 99.9 %): its page alert
  // fires, and the default sort (state, descending) puts it first.
  const first = page.locator('[data-testid=slos-table] tbody tr').first();
  await page.waitForFunction(() => {
    const r = document.querySelector('[data-testid=slos-table] tbody tr');
    return r && r.dataset.slo === 'payments-availability' && r.querySelector('[data-state=firing]');
  }, null, { timeout: 150000 });
  assert.match(await first.textContent(), /firing: page/);
  assert.ok(await first.locator('.bar[role=img]').count(), 'no budget bar');
  await page.click('button.sort:has-text("Budget left")');
  await page.waitForURL(/sort=budget/);
  const vals = await page.locator('[data-testid=slos-table] tbody tr').evaluateAll((rs) => rs.map((r) => Number(r.dataset.sortValue)));
  assert.ok(vals.length > 1 && vals.every((v, i) => i === 0 || vals[i - 1] >= v), `rows not sorted by budget: ${vals}`);
  await shot('slos');
  await page.click('a[href="/slos/payments-availability"]');
  await page.locator('[data-testid=slo-detail]').waitFor();
  assert.match(await page.locator('[data-testid=slo-budget]').textContent(), /min of full outage left/);
  assert.equal(await page.locator('[data-testid=burn-table] tbody tr').count(), 4);
  assert.ok(await page.locator('[data-testid=burn-table] tbody tr[data-exceeded=true]').count() >= 1, 'no exceeded burn-rate row');
  assert.match(await page.locator('[data-testid=slo-alerts]').textContent(), /page firing/);
  assert.match(await page.locator('[data-testid=slo-traces]').getAttribute('href'), /^\/traces\?service=payments&status=error/);
  await page.locator('[data-testid=slo-charts] .chart-plot canvas').first().waitFor();
  assert.equal(await page.locator('[data-testid=slo-charts] figure').count(), 3, 'want 2 burn-rate charts and the alert timeline');
  await shot('slo-detail');
  await page.click('[data-testid=slo-traces]');
  await page.waitForURL(/\/traces\?service=payments/);
});

test('guards on the SLO detail and the side panel: state, events with burn rates, and the operator buttons', async (t) => {
  if (target.kind !== 'fixture') return t.skip('fixture guards (the demo test below follows the real guards)');
  await page.goto(target.url + '/slos/payments-availability');
  const sec = page.locator('[data-testid=slo-detail] [data-testid=guards]');
  const g = sec.locator('[data-guard="payments-shed"]');
  await g.waitFor();
  // Only the guards of this SLO (inventory-break acts on another one).
  assert.equal(await sec.locator('[data-guard]').count(), 1);
  assert.equal(await g.getAttribute('data-state'), 'triggered-dry-run');
  assert.equal((await g.locator('[data-guard-state]').textContent()).trim(), 'triggered (dry-run)');
  assert.match(await g.locator('[data-testid=guard-action]').textContent(), /^Would have: shed payments inbound to 70%/);
  const ev = g.locator('[data-testid=guard-events] li').first();
  assert.equal(await ev.getAttribute('data-kind'), 'would-act');
  assert.equal(await ev.locator('[data-testid=burn-rates]').textContent(), '5m 38.0× · 1h 35.0×');
  assert.match(await ev.textContent(), /would have acted\s*dry-run\s*would have acted: shed payments/);
  assert.match(await ev.textContent(), /by guard/);
  // Promote asks first, then shows the server's answer.
  page.once('dialog', (d) => d.accept());
  await g.locator('button:has-text("Promote to enforce")').click();
  await page.locator('[data-guard="payments-shed"][data-mode="enforce"]').waitFor();
  await g.locator('[data-testid=guard-events] li[data-kind=promoted]').waitFor();
  assert.match(await g.locator('li[data-kind=promoted]').textContent(), /promoted from dry-run to enforce \(policy v6\)[\s\S]*by api 127\.0\.0\.1/);
  assert.equal(await g.locator('button:has-text("Promote to enforce")').count(), 0);
  await g.locator('button:has-text("Pause")').click();
  await page.locator('[data-guard="payments-shed"][data-state="paused"]').waitFor();
  await g.locator('button:has-text("Resume")').click();
  await page.locator('[data-guard="payments-shed"][data-state="triggered-dry-run"]').waitFor();
  assert.deepEqual(target.stats.guardOps.map((o) => `${o.guard} ${o.op}`), ['payments-shed promote', 'payments-shed pause', 'payments-shed resume']);
  await shot('slo-guards');

  // The topology: inventory's guard acts (badge) and the edges into
  // inventory say how it moved their traffic.
  await page.goto(target.url + '/topology?window=5m&sel=node%3Ainventory');
  await page.waitForFunction(() => window.meshscope && window.meshscope.cy && window.meshscope.cy.getElementById('inventory').hasClass('guard-acting'), null, { timeout: 20000 });
  const r = await page.evaluate(() => {
    const cy = window.meshscope.cy;
    return {
      acting: cy.nodes('.guard-acting').map((n) => n.id()), label: cy.getElementById('inventory').data('label'),
      edges: cy.edges().filter((e) => e.target().id() === 'inventory').map((e) => ({ moved: e.hasClass('guard-moved'), label: e.data('label') })),
      others: cy.edges('.guard-moved').filter((e) => e.target().id() !== 'inventory').length,
    };
  });
  assert.deepEqual(r.acting, ['inventory']);
  assert.match(r.label, /inventory ◆ ⚑ acting/);
  assert.ok(r.edges.length > 0, 'no edge into inventory');
  for (const e of r.edges) {
    assert.ok(e.moved, 'edge into inventory lacks the guard mark');
    assert.match(e.label, /^⚑ break \(5% probes\)/);
  }
  assert.equal(r.others, 0);
  const pg = page.locator('[data-testid=side-panel] [data-guard="inventory-break"]');
  await pg.waitFor({ timeout: 20000 });
  assert.equal(await pg.getAttribute('data-state'), 'acting');
  assert.match(await pg.locator('[data-testid=guard-action]').textContent(), /^Acting since .*: open the breaker on inventory .* \(policy v4\)$/);
  const acted = pg.locator('li[data-kind=acted]');
  assert.match(await acted.textContent(), /acted\s*enforced\s*open the breaker/);
  assert.equal(await acted.locator('[data-testid=burn-rates]').textContent(), '5m 28.4× · 1h 16.2×');
  await shot('topology-guard');
  page.once('dialog', (d) => d.accept());
  await pg.locator('button:has-text("Revert")').click();
  await page.locator('[data-guard="inventory-break"][data-state="cooling-down"]').waitFor();
  const reverted = pg.locator('[data-testid=guard-events] li').first();
  assert.equal(await reverted.getAttribute('data-kind'), 'reverted');
  assert.match(await reverted.textContent(), /reverted: open the breaker[\s\S]*\(policy v5\)[\s\S]*by api 127\.0\.0\.1/);
  assert.ok(await pg.locator('button:has-text("Revert")').isDisabled(), 'Revert enabled without an action');
  await pg.locator('[data-testid=guard-cooldown]').waitFor();
  // A reload draws the graph from the guards' new state: no badge.
  await page.reload();
  await waitForNodes(['inventory']);
  await page.locator('[data-testid=side-panel] [data-guard="inventory-break"][data-state="cooling-down"]').waitFor();
  await page.waitForTimeout(500);
  assert.equal(await page.evaluate(() => window.meshscope.cy.nodes('.guard-acting').length), 0);
});

test('a viewer sees the guards, their state and events, but no guard buttons', async () => {
  const f = await startFixtureServer({ auth: { role: 'viewer' } });
  const p2 = await browser.context.newPage();
  try {
    await p2.goto(f.url + '/slos/payments-availability');
    await p2.fill('input[name="name"]', 'vera');
    await p2.fill('input[name="password"]', 'secret');
    await p2.click('button[type="submit"]');
    await p2.locator('[data-guard="payments-shed"] [data-testid=guard-events] li').first().waitFor();
    assert.equal(await p2.locator('[data-guard="payments-shed"]').getAttribute('data-state'), 'triggered-dry-run');
    assert.equal(await p2.locator('[data-mutating]').count(), 0);
    assert.equal(await p2.locator('[data-guard] button').count(), 0);
    await p2.goto(f.url + '/topology?sel=node%3Ainventory');
    await p2.locator('[data-testid=side-panel] [data-guard="inventory-break"][data-state="acting"]').waitFor({ timeout: 20000 });
    assert.equal(await p2.locator('[data-testid=side-panel] [data-guard] button').count(), 0);
    assert.equal(f.stats.guardOps, undefined);
  } finally {
    await p2.close();
    await f.close();
  }
});

test('demo: the inventory guard shifts to v1 once v2 fails, the payments guard only records', async (t) => {
  if (target.kind !== 'demo') return t.skip('the real demo only');
  // inventory v2 fails from 2 minutes after the start; the page alert
  // needs its 2-minute window.
  const deadline = Date.now() + 300000;
  let inv;
  for (;;) {
    inv = (await api('/api/mesh/v1/guards?service=inventory')).guards.find((g) => g.name === 'inventory-fallback');
    if (inv && inv.state === 'acting') break;
    assert.ok(Date.now() < deadline, `inventory-fallback not acting within 5 minutes: ${JSON.stringify(inv)}`);
    await page.waitForTimeout(2000);
  }
  await page.goto(target.url + '/slos/inventory-availability');
  const g = page.locator('[data-testid=slo-detail] [data-guard="inventory-fallback"]');
  await g.locator('[data-testid=guard-events] li[data-kind=acted]').waitFor({ timeout: 20000 });
  assert.equal(await g.getAttribute('data-state'), 'acting');
  const acted = g.locator('li[data-kind=acted]').first();
  assert.match(await acted.textContent(), /enforced\s*shift inventory to v1 100% \(policy v\d+\)/);
  assert.match(await acted.locator('[data-testid=burn-rates]').textContent(), /\d+\.\d×/);
  await shot('demo-slo-guard');
  await page.goto(target.url + '/topology?window=5m&sel=node%3Ainventory');
  await page.waitForFunction(() => window.meshscope && window.meshscope.cy && window.meshscope.cy.getElementById('inventory').hasClass('guard-acting'), null, { timeout: 30000 });
  const inv2 = page.locator('[data-testid=side-panel] [data-policy="Route/inventory-split"]');
  await inv2.waitFor({ timeout: 20000 });
  const weights = await inv2.locator('tr[data-version]').evaluateAll((rows) => rows.map((r) => [r.dataset.version, r.dataset.weight]));
  assert.deepEqual(weights, [['v1', '100']]);
  await shot('demo-topology-guard');
  const pay = (await api('/api/mesh/v1/events?guard=payments-shed')).events;
  assert.ok(pay.length > 0 && pay.every((e) => e.mode === 'dry-run' && e.kind !== 'acted'), `payments-shed events ${JSON.stringify(pay.map((e) => e.kind))}`);
});

// countOf reads a decision count of a policy in the side panel (0 while
// absent).
async function countOf(panel, policy, decision, enforced) {
  const li = panel.locator(`[data-policy="${policy}"] li[data-decision="${decision}"][data-enforced="${enforced}"]`);
  return (await li.count()) ? Number(await li.getAttribute('data-count')) : 0;
}

// pollCount waits until a decision count is above 0 (the panels refresh
// their counts every 10 s; the demo's counters need a scrape or two).
async function pollCount(panel, policy, decision, enforced, timeout = 60000) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const n = await countOf(panel, policy, decision, enforced);
    if (n > 0 || Date.now() > deadline) return n;
    await page.waitForTimeout(1000);
  }
}

// inventoryShifted: the demo's inventory-fallback guard has acted (its
// action is still active), so inventory's route sends everything to v1.
async function inventoryShifted() {
  const g = (await api('/api/mesh/v1/guards?service=inventory')).guards.find((x) => x.name === 'inventory-fallback');
  return !!(g && g.action && !g.action.dry_run);
}
test('the topology shows mTLS per edge: padlocks, the share in the panel and the strip\'s plaintext count', async () => {
  await page.goto(target.url + '/topology?window=1m');
  await waitForNodes(['payments', 'checkout']);
  // The padlock follows the graph's tls state of each edge; the unmeshed
  // service (reviews in the fixture, pricing in the demo) is called in
  // plaintext.
  const unmeshed = target.kind === 'fixture' ? 'reviews' : 'pricing';
  await page.waitForFunction(() => window.meshscope.cy.edges().some((e) => e.hasClass('tls-mtls')), null, { timeout: 30000 });
  const g = await api('/api/mesh/graph?window=1m');
  const drawn = await page.evaluate(() => Object.fromEntries(window.meshscope.cy.edges().map((e) => [e.id(), { label: e.data('label'), cls: e.classes().filter((c) => c.startsWith('tls-')) }])));
  const toUnmeshed = g.edges.filter((e) => e.target === unmeshed);
  assert.ok(toUnmeshed.length > 0, `no edge into ${unmeshed}`);
  for (const e of toUnmeshed) {
    assert.equal(e.tls, 'plaintext', `${e.id} into the unmeshed ${unmeshed}`);
    assert.ok(!drawn[e.id].label.includes('🔒'), `${e.id} drawn with a padlock: ${drawn[e.id].label}`);
  }
  const mtls = g.edges.filter((e) => e.tls === 'mtls');
  assert.ok(mtls.length > 0, 'no mTLS edge between meshed services');
  for (const e of mtls) if (drawn[e.id]) {
    assert.ok(/^(⚑[^·]*· )?🔒/.test(drawn[e.id].label), `${e.id}: ${drawn[e.id].label}`); // a guard's mark comes first
    assert.deepEqual(drawn[e.id].cls, ['tls-mtls']);
  }
  // The strip counts the edges still in plaintext, as the server does.
  const strip = await page.locator('[data-testid=coverage-tls]').textContent();
  assert.match(strip, new RegExp(`Edges in mTLS\\s*${g.coverage.edges_mtls}/${g.coverage.edges}`));
  assert.ok(g.coverage.edges_plaintext >= toUnmeshed.length);
  if (target.kind === 'fixture') assert.equal(g.coverage.edges_plaintext, 5);
  // The edge panel: its share, the same figure as the edges table.
  const e = target.kind === 'fixture' ? g.edges.find((x) => x.id === 'web->cart') : mtls[0];
  const rows = await api(`/api/mesh/edges?window=1m&source=${e.source === 'user' ? 'unknown' : e.source}&destination=${e.target}`);
  await page.goto(`${target.url}/topology?window=1m&sel=${encodeURIComponent('edge:' + e.id)}`);
  const tag = page.locator('[data-testid=side-panel] [data-testid=edge-tls]');
  await tag.waitFor({ timeout: 20000 });
  assert.equal(await tag.getAttribute('data-tls'), e.tls);
  assert.match(await tag.textContent(), new RegExp(`${fmtPct(e.mtls_fraction)} of requests over mTLS`));
  assert.equal(fmtPct(mtlsShare(rows.edges[0])), fmtPct(e.mtls_fraction));
  if (target.kind === 'fixture') assert.match(await tag.textContent(), /partly mTLS: 75%/);
  await shot('topology-mtls-edge');
});

test('the topology marks services with enforced and observe-only policies and split edges', async () => {
  await page.goto(target.url + '/topology?window=5m');
  await waitForNodes(['inventory', 'payments', 'catalog']);
  const read = () => page.evaluate(() => {
    const cy = window.meshscope.cy;
    const cls = (id) => cy.getElementById(id).classes().filter((c) => c.startsWith('pol-'));
    const toInv = cy.edges().filter((e) => e.target().id() === 'inventory').map((e) => ({ split: e.hasClass('split'), label: e.data('label') }));
    const toPay = cy.edges().filter((e) => e.target().id() === 'payments').map((e) => ({ split: e.hasClass('split'), label: e.data('label') }));
    return { inventory: cls('inventory'), payments: cls('payments'), web: cls('web'), invLabel: cy.getElementById('inventory').data('label'), toInv, toPay };
  });
  // The policy list arrives on its own request, after the graph.
  await page.waitForFunction(() => window.meshscope.cy.getElementById('inventory').hasClass('pol-enforce'), null, { timeout: 20000 });
  const r = await read();
  assert.deepEqual(r.inventory, ['pol-enforce']);
  assert.deepEqual(r.payments, ['pol-observe']);
  assert.deepEqual(r.web, []);
  assert.match(r.invLabel, /inventory ◆/);
  assert.ok(r.toInv.length > 0, 'no edge into inventory');
  const shifted = target.kind === 'demo' && (await inventoryShifted());
  for (const e of r.toInv) {
    if (shifted) {
      assert.ok(!e.split && /^⚑ shift to v1/.test(e.label), `edge into inventory after the guard acted: ${JSON.stringify(e)}`);
      continue;
    }
    assert.ok(e.split, 'edge into inventory lacks the split mark');
    assert.match(e.label, /split 90\/10/);
  }
  for (const e of r.toPay) assert.ok(!e.split, 'payments has no split but its edge is marked');
});

test('the side panel shows policies, their mode, ejected endpoints and decision counts', async () => {
  await page.goto(target.url + '/topology?window=5m&sel=node%3Ainventory');
  const panel = page.locator('[data-testid=side-panel]');
  const inv = panel.locator('[data-policy="Route/inventory-split"]');
  await inv.waitFor({ timeout: 20000 });
  assert.equal(await inv.getAttribute('data-mode'), 'enforce');
  assert.equal((await inv.locator('[data-testid=policy-mode]').textContent()).trim(), 'enforce');
  const weights = await inv.locator('tr[data-version]').evaluateAll((rows) => rows.map((r) => [r.dataset.version, r.dataset.weight]));
  // The demo's inventory-fallback guard moves v2's 10 % to v1 once v2 fails.
  assert.deepEqual(weights, target.kind === 'fixture' || !(await inventoryShifted()) ? [['v1', '90'], ['v2', '10']] : [['v1', '100']]);
  const v1 = await pollCount(panel, 'Route/inventory-split', 'route:v1', 'true');
  assert.ok(v1 > 0, 'no route:v1 decisions counted');
  assert.match(await inv.locator('li[data-decision="route:v1"]').textContent(), new RegExp(`^sent ${v1} requests? to v1$`));
  if (target.kind === 'fixture') {
    assert.equal(v1, 540);
    assert.equal(await countOf(panel, 'Route/inventory-split', 'route:v2', 'true'), 60);
  }

  await page.goto(target.url + '/topology?window=5m&sel=node%3Apayments');
  const pay = panel.locator('[data-policy="Route/payments-retries"]');
  await pay.waitFor({ timeout: 20000 });
  assert.equal(await pay.getAttribute('data-mode'), 'observe');
  const facts = await pay.locator('.pol-facts').textContent();
  assert.match(facts, /timeout\s*300ms/);
  assert.match(facts, /retries\s*2 on 5xx, connect-failure, reset, 150ms per try/);
  // Outlier detection has no mode: the proxies' (observe in the demo).
  const od = panel.locator('[data-policy="Resilience/payments-outliers"]');
  assert.equal(await od.getAttribute('data-mode'), 'observe');
  assert.match(await od.locator('[data-testid=policy-mode]').textContent(), /observe \(proxy\)/);
  await od.locator('[data-testid=ejected]').waitFor({ timeout: 20000 });
  const retried = await pollCount(panel, 'Route/payments-retries', 'retry', 'false');
  assert.ok(retried > 0, 'no would-have retry counted within 60 s');
  const text = await pay.locator('li[data-decision="retry"][data-enforced="false"]').textContent();
  assert.match(text, retried === 1 ? /^would have retried once$/ : new RegExp(`^would have retried ${retried} times$`));
  assert.equal(await countOf(panel, 'Route/payments-retries', 'retry', 'true'), 0, 'observe-mode retries counted as enforced');
  if (target.kind === 'fixture') {
    assert.equal(retried, 14);
    assert.match(await pay.textContent(), /would have timed out 3 requests/);
    const row = od.locator('[data-testid=ejected] tr[data-address="127.0.0.1:9301"]');
    assert.match(await row.textContent(), /127\.0\.0\.1:9301\s*v1\s*5 consecutive 5xx \(by checkout-1\)\s*\d/);
    assert.equal(await od.locator('[data-testid=ejected] tbody tr').count(), 1);
  }
  await shot('topology-policies');

  if (target.kind === 'fixture') {
    await page.goto(target.url + '/topology?window=5m&sel=node%3Acart');
    const cart = panel.locator('[data-policy="Resilience/cart-limits"]');
    await cart.waitFor({ timeout: 20000 });
    assert.equal(await cart.getAttribute('data-mode'), 'enforce');
    const f = await cart.locator('.pol-facts').textContent();
    assert.match(f, /breaker\s*100 requests, 64 connections, 32 pending/);
    assert.match(f, /rate limit\s*50\/s, burst 60/);
    assert.match(await cart.locator('li[data-decision=rate_limited]').textContent(), /^answered 429 to 7 requests$/);
    // The PromQL behind the counts names the destination service and the window.
    assert.ok(target.stats.queries.includes('sum by (policy_kind, policy, decision, enforced) (increase(mesh_policy_decisions_total{service="cart"}[300s]))'));
  }
});

test('the Audit page lists changes newest first and opens a diff', async () => {
  await page.goto(target.url + '/audit');
  await page.waitForSelector('[data-testid="audit-table"] tbody tr');
  const want = target.kind === 'fixture' ? 3 : (await api('/api/mesh/v1/audit')).entries.length;
  const rows = await page.$$eval('[data-testid="audit-table"] tbody tr[data-seq]', (trs) => trs.map((tr) => Number(tr.dataset.seq)));
  assert.equal(rows.length, want);
  assert.deepEqual(rows, [...rows].sort((a, b) => b - a), 'newest first');
  if (target.kind === 'fixture') {
    await page.click('tr[data-seq="2"] button:has-text("diff")');
    const diff = await page.textContent('pre.diff');
    assert.match(diff, /- {9}weight: 90/);
    assert.match(diff, /\+ {9}weight: 80/);
    assert.equal(await page.textContent('tr[data-seq="2"] td:nth-child(3)'), 'alice');
  }
  await shot('audit');
});

test('with an auth file the UI asks to sign in, then shows the user and role', async () => {
  const f = await startFixtureServer({ auth: { role: 'viewer' } });
  const p2 = await browser.context.newPage();
  try {
    await p2.goto(f.url + '/services');
    await p2.waitForSelector('[data-testid="login"]');
    await p2.fill('input[name="name"]', 'alice');
    await p2.fill('input[name="password"]', 'wrong');
    await p2.click('button[type="submit"]');
    await p2.waitForSelector('[role="alert"]');
    assert.match(await p2.textContent('[role="alert"]'), /wrong name or password/);
    await p2.fill('input[name="password"]', 'secret');
    await p2.click('button[type="submit"]');
    await p2.waitForSelector('[data-testid="user"]');
    assert.match(await p2.textContent('[data-testid="user"]'), /alice\s+viewer/);
    assert.equal(await p2.$('[data-testid="login"]'), null);
    // A viewer sees the audit log but no mutating buttons.
    await p2.goto(f.url + '/audit');
    await p2.waitForSelector('tr[data-seq="2"]');
    assert.equal(await p2.$('[data-mutating]'), null);
  } finally {
    await p2.close();
    await f.close();
  }
});

test('an operator rolls back from the Audit page with the CSRF header', async () => {
  const f = await startFixtureServer({ auth: { role: 'operator' } });
  const p2 = await browser.context.newPage();
  try {
    await p2.goto(f.url + '/audit');
    await p2.fill('input[name="name"]', 'bob');
    await p2.fill('input[name="password"]', 'secret');
    await p2.click('button[type="submit"]');
    await p2.waitForSelector('tr[data-seq="3"] [data-mutating="rollback"]');
    assert.match(await p2.textContent('[data-testid="user"]'), /bob\s+operator/);
    await p2.click('tr[data-seq="3"] [data-mutating] button');
    await p2.click('tr[data-seq="3"] button:has-text("Confirm rollback to v2")');
    await p2.waitForSelector('[data-testid="audit-notice"]');
    assert.equal(await p2.textContent('[data-testid="audit-notice"]'), 'Rolled back to v2: new version v4.');
    assert.deepEqual(f.stats.rollbacks, [{ version: '2', csrf: 'c1' }]);
  } finally {
    await p2.close();
    await f.close();
  }
});

test('no script errors or CSP violations on any page', () => {
  const bad = problems.filter((p) => !/Failed to load resource.*404/.test(p) || target.kind === 'fixture');
  assert.deepEqual(bad, []);
});

test('the Rollouts page lists progress and a rollout shows its charts, judgement and controls', async (t) => {
  const list = await api('/api/mesh/v1/rollouts');
  if (target.kind === 'demo' && list.rollouts.length === 0) return t.skip('the demo runs no rollout');
  const ro = list.rollouts[0];
  await page.goto(target.url + '/topology');
  await page.click('nav a[href="/rollouts"]');
  const row = page.locator(`[data-testid=rollouts-table] tr[data-rollout="${ro.name}"]`);
  await row.waitFor();
  assert.match(await row.textContent(), new RegExp(`${ro.stable} → ${ro.canary}`));
  assert.equal(await row.locator('[data-testid=weight]').textContent(), `${ro.weight} %`);
  assert.equal(await row.locator('.rollout-steps li').count(), ro.steps.length);
  await shot('rollouts');
  await row.locator('a').click();
  await page.locator('[data-testid=rollout-detail]').waitFor();
  const s = await api('/api/mesh/v1/rollouts/' + encodeURIComponent(ro.name));
  assert.equal(await page.locator('[data-testid=rollout-weight]').textContent(), `${s.weight} %`);
  assert.equal(await page.locator('[data-testid=rollout-charts] figure').count(), 5, 'want weight, success rate, p50, p99 and request-rate charts');
  if (s.intervals.length) {
    assert.equal(await page.locator('[data-testid=rollout-intervals] tbody tr').count(), s.intervals.length);
    const lastMetrics = s.intervals[s.intervals.length - 1].result.metrics;
    assert.equal(await page.locator('[data-testid=rollout-metrics] tbody tr').count(), lastMetrics.length);
    const lat = lastMetrics.find((m) => m.name === 'latency');
    if (lat) assert.match(await page.locator('[data-testid=rollout-metrics] tr[data-metric=latency]').textContent(), new RegExp(lat.p.toPrecision(3).replace('.', '\\.')));
    assert.ok(await page.locator('[data-testid=chart-weight] path[data-series="canary weight"]').count(), 'no weight line');
  }
  assert.match(await page.locator('[data-testid=rollout-traces]').getAttribute('href'), new RegExp(`^/traces\\?service=${s.service}&tags=service\\.version%3D${s.canary}&errors=1`));
  await shot('rollout-detail');
  if (target.kind === 'fixture') {
    await page.click('button:has-text("Pause")');
    await page.locator('section.rollout .page-head [data-phase=paused]').waitFor();
    await page.locator('button:has-text("Resume")').waitFor();
    await page.click('button:has-text("Resume")');
    await page.locator('section.rollout .page-head [data-phase=progressing]').waitFor();
  }
});
