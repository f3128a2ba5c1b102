// Bundles src/ into ../dist (index.html, app.js, app.css) with esbuild.
// index.html references the assets with ?v=<content hash> so the Go handler
// can serve them as immutable. No network access at build or run time.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', 'dist');
mkdirSync(out, { recursive: true });
for (const f of readdirSync(out)) {
  if (f !== '.keep') rmSync(join(out, f), { recursive: true, force: true });
}

await build({
  entryPoints: { app: join(here, 'src', 'main.js') },
  bundle: true,
  minify: process.env.UI_DEV ? false : true,
  sourcemap: false,
  format: 'esm',
  target: ['chrome110', 'firefox115', 'safari16'],
  outdir: out,
  legalComments: 'none',
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
});

const hash = (f) => createHash('sha256').update(readFileSync(join(out, f))).digest('hex').slice(0, 12);
const html = readFileSync(join(here, 'src', 'index.html'), 'utf8')
  .replace('%APP_JS%', `/app.js?v=${hash('app.js')}`)
  .replace('%APP_CSS%', `/app.css?v=${hash('app.css')}`);
writeFileSync(join(out, 'index.html'), html);
console.log('ui: built', readdirSync(out).filter((f) => f !== '.keep').join(', '), 'into', out);
