package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
)

// Paths of the auth endpoints.
const (
	PathLogin  = "/api/auth/v1/login"
	PathLogout = "/api/auth/v1/logout"
	PathWhoami = "/api/auth/v1/whoami"
)

// Cookie and header names.
const (
	SessionCookie = "meshscope_session"
	CSRFCookie    = "meshscope_csrf"
	CSRFHeader    = "X-CSRF-Token"
)

// Ways a caller authenticated.
const (
	MethodToken   = "token"
	MethodSession = "session"
	MethodNone    = "none" // auth is off
)

// DefaultSessionTTL is how long a login lasts.
const DefaultSessionTTL = 12 * time.Hour

// Identity is who makes a request.
type Identity struct {
	Name   string `json:"name"`
	Role   Role   `json:"role"`
	Method string `json:"method"`
	// Addr is the client's IP address.
	Addr string `json:"addr"`
}

type ctxKey struct{}

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity the middleware put in ctx.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}

// Classify says what a request on the main HTTP listener needs. Unknown
// mutating API calls need write: new endpoints are closed by default.
func Classify(r *http.Request) Permission {
	p := r.URL.Path
	get := r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions
	switch {
	case p == PathLogin || p == PathLogout || p == PathWhoami:
		return PermPublic
	case p == "/-/healthy" || p == "/-/ready" || p == "/ready":
		return PermPublic
	case p == "/api/control/v1/stream":
		return PermStream
	case !get && (p == "/api/v1/write" || strings.HasPrefix(p, "/api/v1/otlp/") || strings.HasPrefix(p, "/otlp/")):
		return PermIngest
	case strings.HasPrefix(p, "/api/v1/admin/") || (strings.HasPrefix(p, "/-/") && !get):
		return PermAdmin
	case strings.HasPrefix(p, "/api/mesh/v1/tokens"):
		return PermAdmin // even the list: who holds which role is the admins' business
	case strings.HasPrefix(p, "/api/v1/"):
		return PermRead // the Prometheus API reads with POST too
	case strings.HasPrefix(p, "/api/"):
		if get {
			return PermRead
		}
		return PermWrite
	case p == "/metrics" || p == "/federate" || strings.HasPrefix(p, "/jaeger/") || strings.HasPrefix(p, "/debug/") || strings.HasPrefix(p, "/-/"):
		if get {
			return PermRead
		}
		return PermAdmin
	}
	if get {
		return PermPublic // the UI's files and pages hold no data
	}
	return PermWrite
}

// Config configures an Authenticator.
type Config struct {
	// File is the parsed --auth-file; nil turns auth off (every caller is
	// an anonymous admin; the server then binds loopback only unless
	// --insecure).
	File *File
	// SessionTTL bounds a login. Default DefaultSessionTTL.
	SessionTTL time.Duration
	// SecureCookies marks cookies Secure (set when the listener has TLS).
	SecureCookies bool
	// TokenStore is the file keeping the tokens created through the token
	// API (their SHA-256 only), beside the auth file's; "" = no API tokens.
	TokenStore string
}

type session struct {
	id      Identity
	csrf    string
	expires time.Time
}

// Authenticator checks credentials. Safe for concurrent use.
type Authenticator struct {
	cfg    Config
	logger *slog.Logger
	users  map[string]User

	tokMu  sync.RWMutex
	tokens []tokenEntry // auth-file tokens, then API ones

	mu       sync.Mutex
	sessions map[string]*session

	denied *prometheus.CounterVec
	now    func() time.Time

	dummyOnce sync.Once
	dummy     []byte
}

type tokenEntry struct {
	hash   [32]byte
	name   string
	role   Role
	source string // SourceFile or SourceAPI
}

// New builds an Authenticator. reg may be nil.
func New(cfg Config, reg prometheus.Registerer, logger *slog.Logger) (*Authenticator, error) {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{cfg: cfg, logger: logger, users: map[string]User{}, sessions: map[string]*session{}, now: time.Now,
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshscope_auth_denied_total",
			Help: "Requests refused by authentication (reason unauthenticated) or authorization (forbidden, csrf).",
		}, []string{"reason"}),
	}
	if reg != nil {
		if err := reg.Register(a.denied); err != nil {
			return nil, fmt.Errorf("registering auth metrics: %w", err)
		}
	}
	if cfg.File != nil {
		if err := cfg.File.Validate(); err != nil {
			return nil, err
		}
		for _, t := range cfg.File.Tokens {
			var e tokenEntry
			if _, err := hex.Decode(e.hash[:], []byte(t.SHA256)); err != nil {
				return nil, fmt.Errorf("token %s: %w", t.Name, err)
			}
			e.name, e.role, e.source = t.Name, t.Role, SourceFile
			a.tokens = append(a.tokens, e)
		}
		for _, u := range cfg.File.Users {
			a.users[u.Name] = u
		}
		if cfg.TokenStore != "" {
			stored, err := loadStore(cfg.TokenStore)
			if err != nil {
				return nil, err
			}
			for _, t := range stored {
				if a.nameTaken(t.Name) {
					return nil, fmt.Errorf("token store %s: token %q: the --auth-file has that name too; rename one", cfg.TokenStore, t.Name)
				}
				e := tokenEntry{name: t.Name, role: t.Role, source: SourceAPI}
				if _, err := hex.Decode(e.hash[:], []byte(t.SHA256)); err != nil {
					return nil, fmt.Errorf("token store: token %s: %w", t.Name, err)
				}
				a.tokens = append(a.tokens, e)
			}
		}
	}
	return a, nil
}

// Enabled reports whether an auth file is in force.
func (a *Authenticator) Enabled() bool { return a.cfg.File != nil }

// lookupToken compares the token's hash with every entry in constant time.
func (a *Authenticator) lookupToken(token string) (tokenEntry, bool) {
	h := sha256.Sum256([]byte(token))
	var found tokenEntry
	ok := 0
	a.tokMu.RLock()
	defer a.tokMu.RUnlock()
	for _, e := range a.tokens {
		if subtle.ConstantTimeCompare(h[:], e.hash[:]) == 1 {
			found, ok = e, 1
		}
	}
	return found, ok == 1
}

func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// errNoCredentials and friends explain a refusal.
type refusal struct {
	code    int // 401 or 403
	reason  string
	msg     string
	invalid bool // a credential was given but is not valid (RFC 6750 invalid_token)
}

// Authenticate returns the caller's identity; ok=false with no error means
// no credentials were given. A bad credential is an error.
func (a *Authenticator) Authenticate(r *http.Request) (Identity, *refusal) {
	addr := clientAddr(r)
	if !a.Enabled() {
		return Identity{Name: "anonymous", Role: RoleAdmin, Method: MethodNone, Addr: addr}, nil
	}
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return Identity{}, &refusal{http.StatusUnauthorized, "unauthenticated", "Authorization: want a Bearer token", false}
		}
		tok, err := ParseToken(tok)
		if err != nil {
			return Identity{}, &refusal{http.StatusUnauthorized, "unauthenticated", "invalid bearer token", true}
		}
		e, ok := a.lookupToken(tok)
		if !ok {
			return Identity{}, &refusal{http.StatusUnauthorized, "unauthenticated", "invalid bearer token", true}
		}
		return Identity{Name: e.name, Role: e.role, Method: MethodToken, Addr: addr}, nil
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		s := a.session(c.Value)
		if s == nil {
			return Identity{}, &refusal{http.StatusUnauthorized, "unauthenticated", "session expired; log in again", true}
		}
		id := s.id
		id.Addr = addr
		return id, nil
	}
	return Identity{}, &refusal{http.StatusUnauthorized, "unauthenticated", "authentication required: send Authorization: Bearer TOKEN or log in", false}
}

func (a *Authenticator) session(sid string) *session {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.sessions[sid]
	if s == nil {
		return nil
	}
	if a.now().After(s.expires) {
		delete(a.sessions, sid)
		return nil
	}
	return s
}

// Authorize checks that id may do what r needs; cookie sessions must
// echo the CSRF token on every non-GET request, and WebSocket upgrades
// must come from the server's own origin.
func (a *Authenticator) authorize(r *http.Request, id Identity, need Permission) *refusal {
	if !id.Role.Can(need) {
		return &refusal{http.StatusForbidden, "forbidden", fmt.Sprintf("role %s may not %s (%s %s)", id.Role, need, r.Method, r.URL.Path), false}
	}
	if id.Method != MethodSession {
		return nil
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions {
		c, err := r.Cookie(SessionCookie)
		s := (*session)(nil)
		if err == nil {
			s = a.session(c.Value)
		}
		got := r.Header.Get(CSRFHeader)
		if s == nil || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
			return &refusal{http.StatusForbidden, "csrf", "missing or wrong " + CSRFHeader + " header (the value of the " + CSRFCookie + " cookie)", false}
		}
	}
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || !strings.EqualFold(u.Host, r.Host) {
				return &refusal{http.StatusForbidden, "csrf", "WebSocket from another origin", false}
			}
		}
	}
	return nil
}

// Middleware authenticates and authorizes every request to next by
// Classify and puts the Identity in the request context.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return a.MiddlewareFor(Classify, next)
}

// MiddlewareFor is Middleware with another classification (the OTLP
// listeners need PermIngest for everything).
func (a *Authenticator) MiddlewareFor(classify func(*http.Request) Permission, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need := classify(r)
		id, ref := a.Authenticate(r)
		if ref != nil && need == PermPublic {
			id, ref = Identity{Addr: clientAddr(r)}, nil
		}
		if ref == nil && need != PermPublic {
			ref = a.authorize(r, id, need)
		}
		if ref != nil {
			a.denied.WithLabelValues(ref.reason).Inc()
			a.logger.Debug("request refused", "path", r.URL.Path, "method", r.Method, "addr", clientAddr(r), "who", id.Name, "reason", ref.reason)
			a.refuse(w, r, ref)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), id)))
	})
}

// IngestOnly classifies every request as telemetry ingest.
func IngestOnly(*http.Request) Permission { return PermIngest }

func (a *Authenticator) refuse(w http.ResponseWriter, r *http.Request, ref *refusal) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		code := "16" // UNAUTHENTICATED
		if ref.code == http.StatusForbidden {
			code = "7" // PERMISSION_DENIED
		}
		// A trailers-only response: the status in the headers.
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", code)
		w.Header().Set("Grpc-Message", url.PathEscape(ref.msg))
		w.WriteHeader(http.StatusOK)
		return
	}
	if ref.code == http.StatusUnauthorized {
		if ref.invalid {
			w.Header().Set("WWW-Authenticate", `Bearer realm="meshscope", error="invalid_token"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="meshscope"`)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ref.code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": ref.msg})
}

// WhoamiView answers GET /api/auth/v1/whoami.
type WhoamiView struct {
	// Enabled is false when the server runs without an auth file.
	Enabled       bool     `json:"enabled"`
	Authenticated bool     `json:"authenticated"`
	Identity      Identity `json:"identity"`
	// Can lists the permissions of the role (read, write, admin, ...).
	Can []string `json:"can"`
}

// RegisterRoutes adds login, logout and whoami.
func (a *Authenticator) RegisterRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+PathLogin, a.login)
	mux.HandleFunc("POST "+PathLogout, a.logout)
	mux.HandleFunc("GET "+PathWhoami, a.whoami)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *Authenticator) whoami(w http.ResponseWriter, r *http.Request) {
	id, ref := a.Authenticate(r)
	v := WhoamiView{Enabled: a.Enabled(), Authenticated: ref == nil, Can: []string{}}
	if ref == nil {
		v.Identity = id
		for _, p := range []Permission{PermRead, PermWrite, PermAdmin, PermIngest, PermStream} {
			if id.Role.Can(p) {
				v.Can = append(v.Can, p.String())
			}
		}
	}
	writeJSON(w, http.StatusOK, v)
}

func randomID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// dummyHash keeps the time of a login for an unknown user like a known one's.
func (a *Authenticator) dummyHash() []byte {
	a.dummyOnce.Do(func() {
		a.dummy, _ = bcrypt.GenerateFromPassword([]byte("meshscope-timing"), bcrypt.DefaultCost)
	})
	return a.dummy
}

func (a *Authenticator) login(w http.ResponseWriter, r *http.Request) {
	if !a.Enabled() {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "the server runs without --auth-file; no login needed"})
		return
	}
	var req struct {
		Name     string `json:"name"`
		Password string `json:"password"`
		// Token logs in with a bearer token instead (Kiali's token
		// strategy): the session gets the token's name and role.
		Token string `json:"token"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want JSON {\"name\": ..., \"password\": ...} or {\"token\": ...}"})
		return
	}
	var u User
	if req.Token != "" {
		tok, err := ParseToken(req.Token)
		e, ok := a.lookupToken(tok)
		if err != nil || !ok || !e.role.Can(PermRead) {
			a.denied.WithLabelValues("unauthenticated").Inc()
			a.logger.Info("login failed", "with", "token", "addr", clientAddr(r))
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid token (or a token of a machine role)"})
			return
		}
		u = User{Name: e.name, Role: e.role}
	} else {
		known, ok := a.users[req.Name]
		hash := a.dummyHash()
		if ok {
			hash = []byte(known.Bcrypt)
		}
		if err := bcrypt.CompareHashAndPassword(hash, []byte(req.Password)); err != nil || !ok {
			a.denied.WithLabelValues("unauthenticated").Inc()
			a.logger.Info("login failed", "name", req.Name, "addr", clientAddr(r))
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "wrong name or password"})
			return
		}
		u = known
	}
	sid, csrf := randomID(), randomID()
	id := Identity{Name: u.Name, Role: u.Role, Method: MethodSession, Addr: clientAddr(r)}
	a.mu.Lock()
	now := a.now()
	for k, s := range a.sessions { // drop expired sessions
		if now.After(s.expires) {
			delete(a.sessions, k)
		}
	}
	a.sessions[sid] = &session{id: id, csrf: csrf, expires: now.Add(a.cfg.SessionTTL)}
	a.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: sid, Path: "/", HttpOnly: true, Secure: a.cfg.SecureCookies,
		SameSite: http.SameSiteStrictMode, MaxAge: int(a.cfg.SessionTTL.Seconds())})
	http.SetCookie(w, &http.Cookie{Name: CSRFCookie, Value: csrf, Path: "/", Secure: a.cfg.SecureCookies,
		SameSite: http.SameSiteStrictMode, MaxAge: int(a.cfg.SessionTTL.Seconds())})
	a.logger.Info("login", "name", u.Name, "role", u.Role, "addr", clientAddr(r))
	writeJSON(w, http.StatusOK, map[string]any{"identity": id, "csrf": csrf})
}

func (a *Authenticator) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(SessionCookie); err == nil {
		a.mu.Lock()
		delete(a.sessions, c.Value)
		a.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true})
	http.SetCookie(w, &http.Cookie{Name: CSRFCookie, Value: "", Path: "/", MaxAge: -1})
	writeJSON(w, http.StatusOK, map[string]string{})
}

// CertAuthorizer lets proxies whose stream authenticated with a token of
// role proxy, operator or admin get mesh certificates (control.CAAuthorizer).
// With auth off every caller may.
type CertAuthorizer struct{}

// AuthorizeCert checks the identity the middleware put in r's context.
func (CertAuthorizer) AuthorizeCert(r *http.Request, service string) error {
	id, ok := FromContext(r.Context())
	switch {
	case !ok:
		return errors.New("the control stream carries no authenticated identity")
	case id.Method == MethodNone:
		return nil
	case !id.Role.Can(PermCert):
		return fmt.Errorf("%s %q has role %s; mesh certificates go to tokens of role %s, %s or %s", id.Method, id.Name, id.Role, RoleProxy, RoleOperator, RoleAdmin)
	}
	return nil
}

// HeaderWho names who makes a change when the server runs without auth;
// it is recorded in the history and the audit log.
const HeaderWho = "X-Meshscope-Who"

// Who names the caller of r for the history, events and the audit log: the
// authenticated identity, else the X-Meshscope-Who header (up to 200
// bytes), else "api" and the client address.
func Who(r *http.Request) string {
	if id, ok := FromContext(r.Context()); ok && id.Method != MethodNone && id.Name != "" {
		return id.Name
	}
	if w := r.Header.Get(HeaderWho); w != "" {
		if len(w) > 200 {
			w = w[:200]
		}
		return w
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "api " + host
}
