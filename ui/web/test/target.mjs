// The server the browser tests drive. By default a fixture server
// (fixture-server.mjs). With MESHSCOPE_UI_TARGET=demo and bin/meshscope
// built, the real `meshscope demo` on free ports, with a temporary data dir.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startFixtureServer } from './fixture-server.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const meshscopeBin = process.env.MESHSCOPE_BIN || join(root, 'bin', 'meshscope');

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// The services of `meshscope demo` (demo/shop.go) the tests look for.
export const demoServices = ['web', 'catalog', 'cart', 'checkout', 'pricing', 'inventory', 'payments'];

export function wantDemo() {
  return process.env.MESHSCOPE_UI_TARGET === 'demo';
}

// startTarget returns {url, kind: 'fixture'|'demo', close()}.
export async function startTarget(opts = {}) {
  if (!wantDemo()) {
    const f = await startFixtureServer(opts);
    return { ...f, kind: 'fixture' };
  }
  if (!existsSync(meshscopeBin)) throw new Error(`MESHSCOPE_UI_TARGET=demo but ${meshscopeBin} is missing: run make build`);
  const data = mkdtempSync(join(tmpdir(), 'meshscope-ui-demo-'));
  // --http with port 0: the demo picks free ports for everything and prints
  // "Meshscope UI: http://127.0.0.1:PORT/".
  // --no-auth: the tests read the APIs directly (the demo's auth is covered by e2e TestDemoAuth).
  const args = ['demo', '--data', data, '--http', '127.0.0.1:0', '--no-auth'];
  const child = spawn(meshscopeBin, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  const kill = (sig) => {
    try { process.kill(-child.pid, sig); } catch {}
  };
  const deadline = Date.now() + 120000;
  let url = '';
  for (;;) {
    if (child.exitCode !== null) throw new Error(`meshscope demo exited ${child.exitCode}:\n${log}`);
    const m = /Meshscope UI: (http:\/\/[^\s/]+)/.exec(log);
    if (m) url = m[1];
    if (url) {
      try {
        const r = await fetch(url + '/api/mesh/graph?window=1m');
        if (r.ok) {
          const g = await r.json();
          // Every shop service has taken traffic (the load reaches all of them within seconds).
          const seen = new Set((g.nodes || []).filter((n) => n.rps > 0).map((n) => n.service || n.id));
          if (demoServices.every((s) => seen.has(s))) break;
        }
      } catch {}
    }
    if (Date.now() > deadline) {
      kill('SIGKILL');
      throw new Error(`meshscope demo did not show a graph within 120 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  return {
    url, kind: 'demo', log: () => log,
    close: async () => {
      const exited = child.exitCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', r));
      // The demo stops every process it started on SIGINT.
      try { process.kill(child.pid, 'SIGINT'); } catch {}
      const t = setTimeout(() => kill('SIGKILL'), 30000);
      await exited;
      clearTimeout(t);
      rmSync(data, { recursive: true, force: true });
    },
  };
}
