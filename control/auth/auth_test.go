package auth

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestParseFileErrorsNameTheKey(t *testing.T) {
	good := HashToken("msk_0123456789abcdef")
	for _, tc := range []struct{ name, in, want string }{
		{"unknown key", "tokens:\n  - {name: a, role: viewer, sha256: " + good + ", secret: x}\n", "field secret not found"},
		{"unknown top key", "tokenz: []\n", "field tokenz not found"},
		{"bad role", "tokens:\n  - {name: a, role: root, sha256: " + good + "}\n", "tokens[0].role"},
		{"bad hash", "tokens:\n  - {name: a, role: viewer, sha256: xyz}\n", "tokens[0].sha256"},
		{"upper hash", "tokens:\n  - {name: a, role: viewer, sha256: " + strings.ToUpper(good) + "}\n", "tokens[0].sha256"},
		{"bad name", "tokens:\n  - {name: 'a b', role: viewer, sha256: " + good + "}\n", "tokens[0].name"},
		{"dup name", "tokens:\n  - {name: a, role: viewer, sha256: " + good + "}\nusers:\n  - {name: a, role: viewer, bcrypt: x}\n", "users[0].name: \"a\" is also tokens[0]"},
		{"bad bcrypt", "users:\n  - {name: u, role: viewer, bcrypt: nope}\n", "users[0].bcrypt"},
		{"ingest user", "users:\n  - {name: u, role: ingest, bcrypt: x}\n", "users[0].role"},
		{"two docs", "tokens: []\n---\ntokens: []\n", "one YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFile([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	f, err := ParseFile([]byte("tokens:\n" + TokenLine("ci", RoleOperator, "msk_0123456789abcdef") + "\n"))
	if err != nil || len(f.Tokens) != 1 || f.Tokens[0].SHA256 != good {
		t.Fatalf("TokenLine round trip: %v %+v", err, f)
	}
	if f, err := ParseFile(nil); err != nil || len(f.Tokens) != 0 {
		t.Fatalf("empty file: %v", err)
	}
}

func TestRolePermissions(t *testing.T) {
	want := map[Role]string{
		RoleViewer:   "public read",
		RoleOperator: "public read write ingest stream",
		RoleAdmin:    "public read write admin ingest stream",
		RoleIngest:   "public ingest",
		RoleProxy:    "public ingest stream",
		Role("x"):    "public",
	}
	for r, w := range want {
		var got []string
		for p := PermPublic; p <= PermStream; p++ {
			if r.Can(p) {
				got = append(got, p.String())
			}
		}
		if strings.Join(got, " ") != w {
			t.Errorf("%s can %v, want %s", r, got, w)
		}
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		method, path string
		want         Permission
	}{
		{"GET", "/", PermPublic},
		{"GET", "/app.js", PermPublic},
		{"GET", "/services/web", PermPublic},
		{"GET", "/-/healthy", PermPublic},
		{"GET", "/ready", PermPublic},
		{"POST", PathLogin, PermPublic},
		{"GET", PathWhoami, PermPublic},
		{"GET", "/api/mesh/v1/policies", PermRead},
		{"GET", "/api/mesh/graph/stream", PermRead},
		{"GET", "/jaeger/api/traces", PermRead},
		{"GET", "/metrics", PermRead},
		{"POST", "/api/v1/query", PermRead},
		{"POST", "/api/mesh/v1/apply", PermWrite},
		{"DELETE", "/api/mesh/v1/policies/route/x", PermWrite},
		{"POST", "/api/mesh/v1/rollback", PermWrite},
		{"POST", "/api/mesh/v1/guards/x/pause", PermWrite},
		{"POST", "/api/anything/new", PermWrite},
		{"PUT", "/somewhere", PermWrite},
		{"POST", "/-/reload", PermAdmin},
		{"POST", "/api/v1/admin/tsdb/delete_series", PermAdmin},
		{"POST", "/api/mesh/v1/tokens", PermAdmin},
		{"GET", "/api/mesh/v1/tokens", PermAdmin},
		{"DELETE", "/api/mesh/v1/tokens/ci", PermAdmin},
		{"POST", "/api/v1/write", PermIngest},
		{"POST", "/otlp/v1/traces", PermIngest},
		{"POST", "/api/v1/otlp/v1/metrics", PermIngest},
		{"GET", "/api/control/v1/stream", PermStream},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		if got := Classify(r); got != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.method, tc.path, got, tc.want)
		}
	}
}

func newTestAuth(t *testing.T) (*Authenticator, map[Role]string) {
	t.Helper()
	toks := map[Role]string{}
	f := &File{}
	for _, r := range []Role{RoleViewer, RoleOperator, RoleIngest} {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		toks[r] = tok
		f.Tokens = append(f.Tokens, Token{Name: "t-" + string(r), Role: r, SHA256: HashToken(tok)})
	}
	h, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	f.Users = []User{{Name: "alice", Role: RoleOperator, Bcrypt: string(h)}}
	a, err := New(Config{File: f}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a, toks
}

func serve(a *Authenticator, r *http.Request) (*httptest.ResponseRecorder, *Identity) {
	var seen *Identity
	mux := http.NewServeMux()
	a.RegisterRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		id, _ := FromContext(r.Context())
		seen = &id
	})
	w := httptest.NewRecorder()
	a.Middleware(mux).ServeHTTP(w, r)
	return w, seen
}

func TestMiddlewareTokens(t *testing.T) {
	a, toks := newTestAuth(t)
	for _, tc := range []struct {
		name, method, path, auth string
		want                     int
	}{
		{"public without token", "GET", "/", "", 200},
		{"read without token", "GET", "/api/mesh/v1/policies", "", 401},
		{"wrong scheme", "GET", "/api/mesh/v1/policies", "Basic " + toks[RoleViewer], 401},
		{"unknown token", "GET", "/api/mesh/v1/policies", "Bearer msk_unknown-token-value", 401},
		{"viewer reads", "GET", "/api/mesh/v1/policies", "Bearer " + toks[RoleViewer], 200},
		{"viewer writes", "POST", "/api/mesh/v1/apply", "Bearer " + toks[RoleViewer], 403},
		{"operator writes", "POST", "/api/mesh/v1/apply", "Bearer " + toks[RoleOperator], 200},
		{"operator is no admin", "POST", "/-/reload", "Bearer " + toks[RoleOperator], 403},
		{"ingest ingests", "POST", "/api/v1/write", "Bearer " + toks[RoleIngest], 200},
		{"ingest cannot read", "GET", "/api/mesh/v1/policies", "Bearer " + toks[RoleIngest], 403},
		{"lower-case bearer", "GET", "/metrics", "bearer " + toks[RoleViewer], 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			if tc.auth != "" {
				r.Header.Set("Authorization", tc.auth)
			}
			w, id := serve(a, r)
			if w.Code != tc.want {
				t.Fatalf("%d %s, want %d", w.Code, w.Body, tc.want)
			}
			if tc.want == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if tc.want == 200 && tc.auth != "" && (id == nil || id.Method != MethodToken || id.Addr != "192.0.2.1") {
				t.Errorf("identity %+v", id)
			}
		})
	}
}

func TestMiddlewareGRPCRefusal(t *testing.T) {
	a, toks := newTestAuth(t)
	for _, tc := range []struct{ auth, code string }{{"", "16"}, {"Bearer " + toks[RoleViewer], "7"}} {
		r := httptest.NewRequest("POST", "/opentelemetry.proto.collector.trace.v1.TraceService/Export", nil)
		r.Header.Set("Content-Type", "application/grpc")
		if tc.auth != "" {
			r.Header.Set("Authorization", tc.auth)
		}
		w := httptest.NewRecorder()
		a.MiddlewareFor(IngestOnly, http.NotFoundHandler()).ServeHTTP(w, r)
		if w.Code != 200 || w.Header().Get("Grpc-Status") != tc.code {
			t.Errorf("auth %q: %d grpc-status %q, want %s", tc.auth, w.Code, w.Header().Get("Grpc-Status"), tc.code)
		}
	}
}

func TestSessionLoginAndCSRF(t *testing.T) {
	a, _ := newTestAuth(t)
	login := func(body string) *httptest.ResponseRecorder {
		w, _ := serve(a, httptest.NewRequest("POST", PathLogin, strings.NewReader(body)))
		return w
	}
	if w := login(`{"name":"alice","password":"wrong"}`); w.Code != 401 {
		t.Fatalf("wrong password: %d", w.Code)
	}
	if w := login(`{"name":"bob","password":"correct horse"}`); w.Code != 401 {
		t.Fatalf("unknown user: %d", w.Code)
	}
	w := login(`{"name":"alice","password":"correct horse"}`)
	if w.Code != 200 {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	var sess, csrf *http.Cookie
	for _, c := range w.Result().Cookies() {
		switch c.Name {
		case SessionCookie:
			sess = c
		case CSRFCookie:
			csrf = c
		}
	}
	if sess == nil || csrf == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookies: %+v %+v", sess, csrf)
	}
	req := func(method, path, csrfHeader, origin string) int {
		r := httptest.NewRequest(method, path, nil)
		r.AddCookie(sess)
		if csrfHeader != "" {
			r.Header.Set(CSRFHeader, csrfHeader)
		}
		if origin != "" {
			r.Header.Set("Upgrade", "websocket")
			r.Header.Set("Origin", origin)
		}
		w, _ := serve(a, r)
		return w.Code
	}
	if c := req("GET", "/api/mesh/v1/policies", "", ""); c != 200 {
		t.Errorf("session read: %d", c)
	}
	if c := req("POST", "/api/mesh/v1/apply", "", ""); c != 403 {
		t.Errorf("session write without CSRF header: %d, want 403", c)
	}
	if c := req("POST", "/api/mesh/v1/apply", "forged", ""); c != 403 {
		t.Errorf("session write with a wrong CSRF header: %d, want 403", c)
	}
	if c := req("POST", "/api/mesh/v1/apply", csrf.Value, ""); c != 200 {
		t.Errorf("session write with the CSRF header: %d, want 200", c)
	}
	if c := req("GET", "/api/mesh/graph/stream", "", "http://evil.example"); c != 403 {
		t.Errorf("cross-origin WebSocket: %d, want 403", c)
	}
	if c := req("GET", "/api/mesh/graph/stream", "", "http://example.com"); c != 200 {
		t.Errorf("same-origin WebSocket: %d, want 200", c)
	}
	// whoami, then logout ends the session.
	r := httptest.NewRequest("GET", PathWhoami, nil)
	r.AddCookie(sess)
	w, _ = serve(a, r)
	var v WhoamiView
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || !v.Enabled || !v.Authenticated || v.Identity.Name != "alice" || strings.Join(v.Can, ",") != "read,write,ingest,stream" {
		t.Errorf("whoami: %v %s", err, w.Body)
	}
	r = httptest.NewRequest("POST", PathLogout, nil)
	r.AddCookie(sess)
	serve(a, r)
	if c := req("GET", "/api/mesh/v1/policies", "", ""); c != 401 {
		t.Errorf("after logout: %d, want 401", c)
	}
}

func TestAuthOff(t *testing.T) {
	a, err := New(Config{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, id := serve(a, httptest.NewRequest("POST", "/api/mesh/v1/apply", nil))
	if w.Code != 200 || id.Role != RoleAdmin || id.Method != MethodNone {
		t.Fatalf("auth off: %d %+v", w.Code, id)
	}
}

func TestCheckBind(t *testing.T) {
	for _, tc := range []struct {
		addr             string
		authOn, insecure bool
		ok               bool
	}{
		{"127.0.0.1:7070", false, false, true},
		{"[::1]:7070", false, false, true},
		{"localhost:7070", false, false, true},
		{"off", false, false, true},
		{"0.0.0.0:7070", false, false, false},
		{":7070", false, false, false},
		{"10.1.2.3:7070", false, false, false},
		{"meshscope.internal:7070", false, false, false},
		{"0.0.0.0:7070", true, false, true},
		{"0.0.0.0:7070", false, true, true},
	} {
		err := CheckBind("http", tc.addr, tc.authOn, tc.insecure)
		if (err == nil) != tc.ok {
			t.Errorf("%s auth=%v insecure=%v: %v", tc.addr, tc.authOn, tc.insecure, err)
		}
		if err != nil && (!strings.Contains(err.Error(), "--http ") || !strings.Contains(err.Error(), "--insecure")) {
			t.Errorf("error does not name the flags: %v", err)
		}
	}
}

func TestLoginWithToken(t *testing.T) {
	a, toks := newTestAuth(t)
	for _, tc := range []struct {
		tok  string
		want int
	}{{toks[RoleOperator], 200}, {toks[RoleIngest], 401}, {"msk_unknown-token-0000", 401}} {
		w, _ := serve(a, httptest.NewRequest("POST", PathLogin, strings.NewReader(`{"token":"`+tc.tok+`"}`)))
		if w.Code != tc.want {
			t.Errorf("token login: %d %s, want %d", w.Code, w.Body, tc.want)
		}
	}
}

// Mesh certificates go to the stream's identity of role proxy, operator
// or admin; viewer and ingest tokens are refused, naming the role.
func TestCertAuthorizer(t *testing.T) {
	for _, tc := range []struct {
		id      *Identity
		wantErr string
	}{
		{&Identity{Name: "p", Role: RoleProxy, Method: MethodToken}, ""},
		{&Identity{Name: "o", Role: RoleOperator, Method: MethodToken}, ""},
		{&Identity{Name: "a", Role: RoleAdmin, Method: MethodToken}, ""},
		{&Identity{Name: "anonymous", Role: RoleAdmin, Method: MethodNone}, ""},
		{&Identity{Name: "v", Role: RoleViewer, Method: MethodToken}, `token "v" has role viewer`},
		{&Identity{Name: "i", Role: RoleIngest, Method: MethodToken}, `token "i" has role ingest`},
		{nil, "no authenticated identity"},
	} {
		r := httptest.NewRequest("GET", "/api/control/v1/stream", nil)
		if tc.id != nil {
			r = r.WithContext(WithIdentity(r.Context(), *tc.id))
		}
		err := CertAuthorizer{}.AuthorizeCert(r, "payments")
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v: %v, want %q", tc.id, err, tc.wantErr)
		}
	}
}
