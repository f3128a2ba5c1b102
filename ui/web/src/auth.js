// The signed-in user: GET /api/auth/v1/whoami at start and after every
// 401, the login page (name and password, or a token), the user and role
// in the header, and canWrite() / <Mutating> for buttons that change the
// mesh (read-only roles never see them). See docs/security.md.
import { html } from './html.js';
import { useEffect, useState } from 'preact/hooks';

// Without an auth file the server answers enabled: false and everyone may
// do everything.
let current = { enabled: false, authenticated: true, identity: { name: 'anonymous', role: 'admin' }, can: ['read', 'write', 'admin'], loaded: false };
const listeners = new Set();

function set(s) {
  current = { ...s, loaded: true };
  for (const f of listeners) f(current);
}

export function session() {
  return current;
}

export async function loadSession() {
  try {
    const r = await fetch('/api/auth/v1/whoami', { headers: { Accept: 'application/json' }, credentials: 'same-origin' });
    if (r.ok) set(await r.json());
    else set(current);
  } catch {
    set(current);
  }
  return current;
}

// A 401 from any API call means the session ended: ask again.
export function onUnauthorized() {
  loadSession();
}

export function useSession() {
  const [s, setS] = useState(current);
  useEffect(() => {
    listeners.add(setS);
    if (!current.loaded) loadSession();
    return () => listeners.delete(setS);
  }, []);
  return s;
}

export function canWrite(s = current) {
  return !s.enabled || (s.can || []).includes('write');
}

// Mutating renders its children only for roles that may change the mesh.
export function Mutating({ children }) {
  const s = useSession();
  return canWrite(s) ? children : null;
}

// csrfToken is the double-submit token: sent as X-CSRF-Token on every
// non-GET request of a cookie session.
export function csrfToken() {
  const m = /(?:^|;\s*)meshscope_csrf=([^;]*)/.exec(document.cookie);
  return m ? decodeURIComponent(m[1]) : '';
}

export function LoginPage() {
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [token, setToken] = useState('');
  const [useToken, setUseToken] = useState(false);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const body = useToken ? { token: token.trim() } : { name, password };
      const r = await fetch('/api/auth/v1/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), credentials: 'same-origin' });
      const b = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(b.error || `HTTP ${r.status}`);
      await loadSession();
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<section class="page login" data-testid="login">
    <h1>Sign in to Meshscope</h1>
    <form onSubmit=${submit} class="login-form">
      ${useToken
        ? html`<label>Token <input type="password" name="token" autocomplete="off" value=${token} onInput=${(e) => setToken(e.target.value)} required /></label>`
        : html`<label>Name <input name="name" autocomplete="username" value=${name} onInput=${(e) => setName(e.target.value)} required /></label>
          <label>Password <input type="password" name="password" autocomplete="current-password" value=${password} onInput=${(e) => setPassword(e.target.value)} required /></label>`}
      <button type="submit" class="primary" disabled=${busy}>Sign in</button>
      <button type="button" class="linklike" onClick=${() => setUseToken(!useToken)}>${useToken ? 'Sign in with a name and password' : 'Sign in with a token'}</button>
      ${error ? html`<p class="error" role="alert">${error}</p>` : ''}
    </form>
  </section>`;
}

export function UserBadge() {
  const s = useSession();
  if (!s.enabled || !s.authenticated) return null;
  const logout = async () => {
    await fetch('/api/auth/v1/logout', { method: 'POST', headers: { 'X-CSRF-Token': csrfToken() }, credentials: 'same-origin' });
    loadSession();
  };
  return html`<span class="user" data-testid="user">${s.identity.name} <span class="tag" data-role=${s.identity.role}>${s.identity.role}</span>
    ${s.identity.method === 'session' ? html`<button type="button" class="linklike" onClick=${logout}>Sign out</button>` : ''}</span>`;
}
