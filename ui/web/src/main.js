// Meshscope UI entry: the route table, the navigation and the page frame.
import 'uplot/dist/uPlot.min.css';
import './app.css';
import { render } from 'preact';
import { html } from './html.js';
import { useRoute, match, onLinkClick } from './router.js';
import { TopologyPage } from './topology.js';
import { ServicesPage } from './services.js';
import { TracesPage, TraceView } from './traces.js';
import { SlosPage, SloView } from './slos.js';
import { RolloutsPage, RolloutView } from './rollouts.js';
import { AuditPage } from './audit.js';
import { LoginPage, UserBadge, useSession } from './auth.js';

// routes is the page table: adding a page is one entry (nav: shown in the
// navigation bar, in this order). Paths match with :params.
export const routes = [
  { path: '/topology', title: 'Topology', nav: true, page: TopologyPage },
  { path: '/services', title: 'Services', nav: true, page: ServicesPage },
  { path: '/traces', title: 'Traces', nav: true, page: TracesPage },
  { path: '/traces/:id', title: 'Trace', page: TraceView, section: '/traces' },
  { path: '/slos', title: 'SLOs', nav: true, page: SlosPage },
  { path: '/slos/:name', title: 'SLO', page: SloView, section: '/slos' },
  { path: '/rollouts', title: 'Rollouts', nav: true, page: RolloutsPage },
  { path: '/rollouts/:name', title: 'Rollout', page: RolloutView, section: '/rollouts' },
  { path: '/audit', title: 'Audit', nav: true, page: AuditPage },
];

function NotFound({ path }) {
  return html`<section class="page"><h1>Not found</h1><p>No page at <code>${path}</code>. <a href="/topology" onClick=${onLinkClick}>Go to the topology</a>.</p></section>`;
}

function App() {
  let { path, query } = useRoute();
  const session = useSession();
  if (path === '/' || path === '/index.html') {
    history.replaceState(null, '', '/topology' + location.search);
    path = '/topology';
  }
  let route = null, params = null;
  for (const r of routes) {
    params = match(r.path, path);
    if (params) {
      route = r;
      break;
    }
  }
  const section = route ? route.section || route.path : '';
  document.title = route ? `${route.title} · Meshscope` : 'Not found · Meshscope';
  const needLogin = session.enabled && !session.authenticated;
  const Page = needLogin ? LoginPage : route ? route.page : NotFound;
  return html`
    <a class="skip" href="#main">Skip to content</a>
    <header class="top">
      <a class="brand" href="/topology" onClick=${onLinkClick}>Meshscope</a>
      <nav aria-label="Pages"><ul>
        ${routes.filter((r) => r.nav).map((r) => html`<li><a href=${r.path} onClick=${onLinkClick} aria-current=${section === r.path ? 'page' : undefined}>${r.title}</a></li>`)}
      </ul></nav>
      <${UserBadge} />
    </header>
    <main id="main" tabindex="-1"><${Page} key=${needLogin ? 'login' : route ? route.path : 'nf'} params=${params} query=${query} path=${path} /></main>`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
