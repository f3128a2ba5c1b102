package tokenapi

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/auth"
)

const (
	adminTok  = "msk_admin-0123456789abcdef"
	opTok     = "msk_operator-0123456789abcdef"
	viewerTok = "msk_viewer-0123456789abcdef"
)

// server is the token API behind the real auth middleware and audit log.
func server(t *testing.T, store string) (*httptest.Server, *audit.Log) {
	t.Helper()
	f, err := auth.ParseFile([]byte("tokens:\n" + auth.TokenLine("root", auth.RoleAdmin, adminTok) + "\n" +
		auth.TokenLine("ci", auth.RoleOperator, opTok) + "\n" + auth.TokenLine("dash", auth.RoleViewer, viewerTok) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{File: f, TokenStore: store}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := audit.DefaultConfig()
	cfg.Dir = filepath.Join(filepath.Dir(store), "audit")
	log, err := audit.Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = log.Close() })
	mux := http.NewServeMux()
	New(a, log, nil).RegisterRoutes(mux)
	mux.HandleFunc("GET /api/mesh/v1/policies", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	srv := httptest.NewServer(a.Middleware(mux))
	t.Cleanup(srv.Close)
	return srv, log
}

func do(t *testing.T, srv *httptest.Server, method, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// Only admins reach the token API: 401 without a token, 403 for the other
// roles, for every route.
func TestTokenAPIOnlyAdmins(t *testing.T) {
	srv, _ := server(t, filepath.Join(t.TempDir(), "auth", "tokens.yaml"))
	for _, r := range []struct{ method, path, body string }{
		{"GET", Path, ""}, {"POST", Path, `{"name":"x","role":"viewer"}`}, {"DELETE", Path + "/x", ""},
	} {
		for _, c := range []struct {
			token string
			want  int
		}{{"", 401}, {viewerTok, 403}, {opTok, 403}} {
			if code, body := do(t, srv, r.method, r.path, c.token, r.body); code != c.want {
				t.Errorf("%s %s with %q: %d %s, want %d", r.method, r.path, c.token, code, body, c.want)
			}
		}
	}
}

// An admin creates a token (it authenticates at once, its hash alone is
// stored, it survives a restart), lists and revokes it (it stops working);
// auth-file tokens cannot be revoked; every change is audited.
func TestTokenAPILifecycle(t *testing.T) {
	store := filepath.Join(t.TempDir(), "auth", "tokens.yaml")
	srv, log := server(t, store)
	code, body := do(t, srv, "POST", Path, adminTok, `{"name":"deployer","role":"operator"}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	var created CreateResponse
	if err := json.Unmarshal([]byte(body), &created); err != nil || !strings.HasPrefix(created.Token, auth.TokenPrefix) ||
		created.Role != auth.RoleOperator || created.Source != auth.SourceAPI {
		t.Fatalf("create answer %s (%v)", body, err)
	}
	if code, _ := do(t, srv, "GET", "/api/mesh/v1/policies", created.Token, ""); code != 200 {
		t.Errorf("the new token does not authenticate: %d", code)
	}
	stored, err := os.ReadFile(store)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored), created.Token) || !strings.Contains(string(stored), auth.HashToken(created.Token)) {
		t.Errorf("the store must hold the hash, not the token:\n%s", stored)
	}
	if fi, _ := os.Stat(store); fi.Mode().Perm() != 0o600 {
		t.Errorf("store mode %v", fi.Mode().Perm())
	}
	for _, bad := range []struct{ body, want string }{
		{`{"name":"deployer","role":"viewer"}`, "name taken"},
		{`{"name":"root","role":"viewer"}`, "name taken"},
		{`{"name":"x","role":"root"}`, "not a role"},
		{`{"name":"a b","role":"viewer"}`, "tokens[0].name"},
		{`{"name":"x","role":"viewer","secret":"s"}`, "unknown field"},
	} {
		if code, b := do(t, srv, "POST", Path, adminTok, bad.body); code < 400 || !strings.Contains(b, bad.want) {
			t.Errorf("create %s: %d %s, want an error naming %q", bad.body, code, b, bad.want)
		}
	}
	_, list := do(t, srv, "GET", Path, adminTok, "")
	if !strings.Contains(list, `{"name":"root","role":"admin","source":"auth-file"}`) || !strings.Contains(list, `{"name":"deployer","role":"operator","source":"api"}`) ||
		strings.Contains(list, "sha256") {
		t.Errorf("list: %s", list)
	}

	// A restarted server knows the token.
	srv2, _ := server(t, store)
	if code, _ := do(t, srv2, "GET", "/api/mesh/v1/policies", created.Token, ""); code != 200 {
		t.Errorf("after a restart the token does not authenticate: %d", code)
	}

	if code, b := do(t, srv, "DELETE", Path+"/ci", adminTok, ""); code != 409 || !strings.Contains(b, "--auth-file") {
		t.Errorf("revoking an auth-file token: %d %s", code, b)
	}
	if code, b := do(t, srv, "DELETE", Path+"/nobody", adminTok, ""); code != 404 {
		t.Errorf("revoking an unknown token: %d %s", code, b)
	}
	if code, b := do(t, srv, "DELETE", Path+"/deployer", adminTok, ""); code != 200 {
		t.Fatalf("revoke: %d %s", code, b)
	}
	if code, _ := do(t, srv, "GET", "/api/mesh/v1/policies", created.Token, ""); code != 401 {
		t.Errorf("a revoked token authenticates: %d", code)
	}
	if stored, _ := os.ReadFile(store); strings.Contains(string(stored), "deployer") {
		t.Errorf("revoked token still stored:\n%s", stored)
	}

	page, err := log.Query(context.Background(), audit.Filter{Action: "token."})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range page.Entries {
		got = append(got, e.Action+" "+strings.Join(e.Targets, ",")+" "+e.Who+" "+e.Outcome)
	}
	joined := strings.Join(got, "\n")
	for _, want := range []string{"token.create Token/deployer root ok", "token.revoke Token/deployer root ok", "token.revoke Token/ci root token \"ci\": the token is in the --auth-file"} {
		if !strings.Contains(joined, want) {
			t.Errorf("audit log lacks %q:\n%s", want, joined)
		}
	}
	for _, e := range page.Entries {
		if e.Action == "token.create" && e.Outcome == "ok" && (!strings.Contains(e.Diff, "+ role: operator") || strings.Contains(e.Diff, created.Token)) {
			t.Errorf("create entry diff %q", e.Diff)
		}
	}
}
