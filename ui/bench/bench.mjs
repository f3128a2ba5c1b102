// Browser benchmark of the topology page: time to first render and frame
// times while the graph stream updates every node once a second, for
// synthetic graphs. Drives Debian's Chromium (playwright-core) against the
// fixture server. Writes raw measurements as JSON (bench/ui/main.go turns
// them into bench/results/ui.json).
//
// Each size is loaded --loads times (fresh page each time) and the first
// render reported as the median, because one load on a shared machine is
// noisy; frames are measured on the last load.
//
//   node ui/bench/bench.mjs [--sizes 100,1000,5000] [--seconds 10] [--loads 3] [--out FILE]
import { writeFileSync } from 'node:fs';
import { launch } from '../web/test/browser.mjs';
import { startFixtureServer } from '../web/test/fixture-server.mjs';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []));
const sizes = (args.sizes || '100,1000,5000').split(',').map(Number);
const seconds = Number(args.seconds || 10);
const modes = (args.modes || 'auto,graph').split(',');
const loads = Math.max(1, Number(args.loads || 3));

function pct(xs, p) {
  if (!xs.length) return NaN;
  const s = xs.slice().sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

const results = [];
const browser = await launch();
try {
  for (const n of sizes) {
    for (const mode of modes) {
      if (mode === 'graph' && n <= 1000) continue; // auto already draws every node
      const srv = await startFixtureServer({ synthetic: n, streamInterval: 1000 });
      const url = `${srv.url}/topology${mode === 'graph' ? '?mode=graph' : ''}`;
      const firsts = [];
      let page = null;
      try {
        let first;
        for (let i = 0; i < loads; i++) {
          if (page) await page.close();
          page = await browser.context.newPage();
          await page.goto(url, { waitUntil: 'commit' });
          await page.waitForFunction(() => window.meshscope && window.meshscope.firstRender > 0, null, { timeout: 120000 });
          first = await page.evaluate(() => ({
            firstRenderMs: window.meshscope.firstRender,
            drawn: window.meshscope.cy ? window.meshscope.cy.nodes().length : 0,
          }));
          firsts.push(Math.round(first.firstRenderMs));
        }
        // Frame intervals while the stream applies updates.
        const frames = await page.evaluate((secs) => new Promise((resolve) => {
          const out = [];
          let last = performance.now();
          const start = last;
          const syncsBefore = window.meshscope.syncs.length;
          const loop = (t) => {
            out.push(t - last);
            last = t;
            if (t - start < secs * 1000) requestAnimationFrame(loop);
            else resolve({ intervals: out, elapsed: t - start, syncs: window.meshscope.syncs.slice(syncsBefore).map((s) => s.ms) });
          };
          requestAnimationFrame(loop);
        }), seconds);
        const seq = await page.locator('[data-testid=stream-status]').getAttribute('data-seq');
        const fps = frames.intervals.length / (frames.elapsed / 1000);
        const row = {
          nodes: n, mode: first.drawn >= n ? 'every node' : `grouped (${first.drawn} drawn)`, requested: mode,
          first_render_ms: pct(firsts, 50), first_render_all_ms: firsts,
          updates: frames.syncs.length, stream_seq: Number(seq),
          sync_ms_p50: +pct(frames.syncs, 50).toFixed(1), sync_ms_max: +Math.max(0, ...frames.syncs).toFixed(1),
          frame_ms_p50: +pct(frames.intervals, 50).toFixed(1), frame_ms_p95: +pct(frames.intervals, 95).toFixed(1), frame_ms_max: +Math.max(...frames.intervals).toFixed(1),
          fps: +fps.toFixed(1),
        };
        results.push(row);
        console.error(JSON.stringify(row));
      } finally {
        if (page) await page.close();
        await srv.close();
      }
    }
  }
} finally {
  await browser.close();
}
const out = JSON.stringify({ sizes, seconds, loads, chromium: (await import('../web/test/browser.mjs')).chromiumPath, results }, null, 2);
if (args.out) writeFileSync(args.out, out + '\n');
else console.log(out);
