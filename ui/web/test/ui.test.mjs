// Browser tests: Debian's Chromium driven by playwright-core against a
// server (fixture by default; the real `meshscope demo` with
// MESHSCOPE_UI_TARGET=demo). Screenshots go to ui/test-artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, watchPage } from './browser.mjs';
import { startTarget, demoServices } from './target.mjs';
import { startFixtureServer } from './fixture-server.mjs';

const artifacts = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test-artifacts');
mkdirSync(artifacts, { recursive: true });

let target, browser, page, problems;

before(async () => {
  target = await startTarget({ streamInterval: 700, addNodeAfter: 4 });
  browser = await launch();
  page = await browser.context.newPage();
  problems = watchPage(page);
});

after(async () => {
  if (browser) await browser.close();
  if (target) await target.close();
});

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
  await page.evaluate(() => window.meshscope.cy.fit(undefined, 30));
  await shot('topology');
});

test('clicking a node opens its RED charts', async () => {
  await page.goto(target.url + '/topology');
  await waitForNodes(['checkout']);
  await page.waitForTimeout(300);
  await clickNode('checkout');
  const panel = page.locator('[data-testid=side-panel]');
  await panel.locator('h2', { hasText: 'checkout' }).waitFor();
  assert.match(page.url(), /sel=node%3Acheckout/);
  for (const c of ['chart-rate', 'chart-errors', 'chart-latency']) {
    await panel.locator(`[data-testid=${c}] canvas`).first().waitFor({ timeout: 15000 });
    assert.equal(await panel.locator(`[data-testid=${c}] .error`).count(), 0, `${c} shows an error`);
  }
  await panel.locator('[data-testid=top-routes] table, [data-testid=top-routes] p.muted:not(:has-text("loading"))').first().waitFor({ timeout: 15000 });
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
  assert.ok(labels.length > 0 && labels.every((l) => l.startsWith('p99')), `edge labels ${labels.join(', ')}`);
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
  await shot('slo-detail');
  await page.click('[data-testid=slo-traces]');
  await page.waitForURL(/\/traces\?service=payments/);
});

test('no script errors or CSP violations on any page', () => {
  const bad = problems.filter((p) => !/Failed to load resource.*404/.test(p) || target.kind === 'fixture');
  assert.deepEqual(bad, []);
});
