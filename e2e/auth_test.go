//go:build unix

package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/meshscope/meshscope/control"
	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/wire"
)

// authTokens creates one token per role with the real `meshscope token
// create`, writes each to a file and the auth file of their lines.
type authTokens struct {
	authFile string
	token    map[string]string // role -> token
	file     map[string]string // role -> token file
}

func makeTokens(t *testing.T, roles ...string) authTokens {
	t.Helper()
	bin, _ := binaries(t)
	dir := t.TempDir()
	at := authTokens{authFile: filepath.Join(dir, "auth.yaml"), token: map[string]string{}, file: map[string]string{}}
	var lines []string
	for _, r := range roles {
		out, err := exec.Command(bin, "token", "create", "--role", r, "--name", "e2e-"+r).Output()
		if err != nil {
			t.Fatalf("token create --role %s: %v", r, err)
		}
		ls := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(ls) != 3 || !strings.HasPrefix(ls[0], "msk_") || !strings.Contains(ls[2], "role: "+r) {
			t.Fatalf("token create output:\n%s", out)
		}
		at.token[r] = ls[0]
		at.file[r] = filepath.Join(dir, r+".token")
		if err := os.WriteFile(at.file[r], []byte(ls[0]+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(ls[2], ls[0]) {
			t.Fatal("the auth-file line holds the token itself")
		}
		lines = append(lines, ls[2])
	}
	if err := os.WriteFile(at.authFile, []byte("tokens:\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return at
}

func call(t *testing.T, method, rawURL, token, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, rawURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/yaml")
	}
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// TestAuthMutatingCalls: every mutating policy call is 401 without a
// token, 403 with a viewer's, and with an operator's succeeds and lands in
// the audit log with who, where from, the diff and the version.
func TestAuthMutatingCalls(t *testing.T) {
	at := makeTokens(t, "viewer", "operator", "ingest", "proxy")
	s := startServer(t, "--auth-file", at.authFile)
	api := s.url(control.APIPrefix)
	changed := strings.Replace(inventorySplit, "weight: 90", "weight: 80", 1)
	changed = strings.Replace(changed, "weight: 10", "weight: 20", 1)

	// Health and the UI shell stay open; reads need a reader.
	for _, p := range []string{"/ready", "/-/healthy", "/"} {
		if code, _ := call(t, "GET", s.url(p), "", ""); code != 200 {
			t.Errorf("GET %s without a token: %d, want 200", p, code)
		}
	}
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"msk_not-a-real-token-at-all", 401}, {at.token["ingest"], 403}, {at.token["viewer"], 200}} {
		if code, b := call(t, "GET", api+"/policies", tc.token, ""); code != tc.want {
			t.Errorf("GET policies with %q: %d %s, want %d", tc.token, code, b, tc.want)
		}
	}

	calls := []struct{ method, path, body string }{
		{"POST", "/apply", inventorySplit},
		{"POST", "/apply", changed},
		{"POST", "/rollback?version=1", ""},
		{"DELETE", "/policies/route/inventory-split", ""},
	}
	for _, c := range calls {
		if code, b := call(t, c.method, api+c.path, "", c.body); code != 401 || !strings.Contains(string(b), "authentication required") {
			t.Errorf("%s %s without a token: %d %s, want 401", c.method, c.path, code, b)
		}
		if code, b := call(t, c.method, api+c.path, at.token["viewer"], c.body); code != 403 || !strings.Contains(string(b), "role viewer may not write") {
			t.Errorf("%s %s as viewer: %d %s, want 403", c.method, c.path, code, b)
		}
		if code, b := call(t, c.method, api+c.path, at.token["operator"], c.body); code != 200 {
			t.Fatalf("%s %s as operator: %d %s, want 200", c.method, c.path, code, b)
		}
	}
	// Nothing the refused calls sent was applied: four versions, all by the operator.
	var h control.HistoryView
	_, b := call(t, "GET", api+"/history", at.token["viewer"], "")
	if err := json.Unmarshal(b, &h); err != nil || h.Version != 4 {
		t.Fatalf("history: %v %s", err, b)
	}
	for _, e := range h.Entries {
		if e.Who != "e2e-operator" {
			t.Errorf("history v%d by %q, want the operator token's name", e.Version, e.Who)
		}
	}

	// The audit log: newest first, one entry per change with its diff.
	_, b = call(t, "GET", s.url(audit.Path), at.token["viewer"], "")
	var page audit.Page
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatalf("audit: %v %s", err, b)
	}
	if len(page.Entries) != 4 {
		t.Fatalf("audit: %d entries, want 4: %s", len(page.Entries), b)
	}
	wantActions := []string{"delete", "rollback", "apply", "apply"}
	for i, e := range page.Entries {
		if e.Action != wantActions[i] || e.Who != "e2e-operator" || e.Role != "operator" || e.Auth != "token" ||
			e.From != "127.0.0.1" || e.Version != uint64(4-i) || e.Outcome != "ok" || len(e.Targets) != 1 || e.Targets[0] != "Route/inventory-split" {
			t.Errorf("audit entry %d: %+v", i, e)
		}
	}
	if d := page.Entries[2].Diff; !strings.Contains(d, "-         weight: 90\n") || !strings.Contains(d, "+         weight: 80\n") {
		t.Errorf("audit diff of the update:\n%s", d)
	}
	// Filters and paging.
	_, b = call(t, "GET", s.url(audit.Path+"?action=apply&limit=1"), at.token["viewer"], "")
	page = audit.Page{}
	if err := json.Unmarshal(b, &page); err != nil || len(page.Entries) != 1 || page.Entries[0].Version != 2 || page.NextBefore != 2 {
		t.Errorf("audit ?action=apply&limit=1: %s", b)
	}

	// The CLI with --token-file: refused without it, works with it.
	bin, _ := binaries(t)
	pf := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(pf, []byte(paymentsRetries), 0o644)
	cmd := exec.Command(bin, "apply", "-f", pf, "--server", s.url(""))
	cmd.Env = append(os.Environ(), "MESHSCOPE_TOKEN_FILE=")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "401") {
		t.Errorf("apply without --token-file: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "apply", "-f", pf, "--server", s.url(""), "--token-file", at.file["viewer"]).CombinedOutput(); err == nil || !strings.Contains(string(out), "403") {
		t.Errorf("apply as viewer: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "apply", "-f", pf, "--server", s.url(""), "--token-file", at.file["operator"]).CombinedOutput(); err != nil {
		t.Errorf("apply as operator: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "audit", "--server", s.url(""), "--token-file", at.file["viewer"], "--limit", "1", "--diff").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "e2e-operator") || !strings.Contains(string(out), "Route/payments-retries") || !strings.Contains(string(out), "+ ") {
		t.Errorf("meshscope audit: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "stat", "--server", s.url(""), "--token-file", at.file["viewer"]).CombinedOutput(); err != nil {
		t.Errorf("meshscope stat with a viewer token: %v\n%s", err, out)
	}

	// The proxy control stream: refused without a token, and a proxy
	// with --token-file registers.
	_, res, err := websocket.DefaultDialer.Dial("ws://"+s.http+wire.Path, nil)
	if err == nil || res == nil || res.StatusCode != 401 {
		t.Errorf("control stream without a token: %v %v", err, res)
	}
	app := startApp(t)
	in := freeAddrs(t, 1)[0]
	startProxy(t, "authed-proxy", "--service", "inventory", "--version", "v1", "--inbound", in+"="+app.addr,
		"--control-plane", s.url(""), "--state-dir", t.TempDir(), "--collector", s.otlpGRPC, "--token-file", at.file["proxy"])
	poll(t, 30*time.Second, "the proxy in /endpoints", func() (bool, string) {
		code, b := call(t, "GET", api+"/endpoints?service=inventory", at.token["viewer"], "")
		var v control.EndpointsView
		_ = json.Unmarshal(b, &v)
		return code == 200 && len(v.Proxies) == 1 && v.Proxies[0].Connected, string(b)
	}, s.proc)
	// Its spans arrive through the authenticated OTLP export.
	send(t, in, "/hello", "")
	poll(t, 30*time.Second, "the proxy's spans", func() (bool, string) {
		code, b := call(t, "GET", s.url("/jaeger/api/traces?service=inventory&lookback=1h&limit=20"), at.token["viewer"], "")
		return code == 200 && strings.Contains(string(b), "traceID"), string(b)
	}, s.proc)
}

// TestAuthOTLPIngest: OTLP writers need an ingest-capable token: 401 /
// UNAUTHENTICATED without one, 403 / PERMISSION_DENIED with a viewer's.
func TestAuthOTLPIngest(t *testing.T) {
	at := makeTokens(t, "viewer", "ingest")
	s := startServer(t, "--auth-file", at.authFile)
	body, _ := proto.Marshal(traceRequest(1, 3))
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {at.token["viewer"], 403}, {at.token["ingest"], 200}} {
		req, _ := http.NewRequest("POST", "http://"+s.otlpHTTP+"/v1/traces", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		res, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("OTLP/HTTP with %q: %d, want %d", tc.token, res.StatusCode, tc.want)
		}
	}
	// Remote write on the main listener too.
	if code, _ := call(t, "POST", s.url("/api/v1/write"), "", "x"); code != 401 {
		t.Errorf("remote write without a token: %d, want 401", code)
	}

	conn, err := grpc.NewClient(s.otlpGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := coltracepb.NewTraceServiceClient(conn)
	for _, tc := range []struct {
		token string
		want  codes.Code
	}{{"", codes.Unauthenticated}, {at.token["viewer"], codes.PermissionDenied}, {at.token["ingest"], codes.OK}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if tc.token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tc.token)
		}
		_, err := client.Export(ctx, traceRequest(2, 3))
		cancel()
		if status.Code(err) != tc.want {
			t.Errorf("OTLP/gRPC with %q: %v, want %s", tc.token, err, tc.want)
		}
	}
}

// TestAuthSecureDefaults: without an auth file a non-loopback listener is
// refused, naming the flag, unless --insecure; a bad auth file names its key.
func TestAuthSecureDefaults(t *testing.T) {
	bin, _ := binaries(t)
	a := freeAddrs(t, 3)
	loop := []string{"--http", a[0], "--otlp-grpc", a[1], "--otlp-http", a[2]}
	for _, tc := range []struct {
		flag string
		args []string
	}{
		{"--http", []string{"--http", "0.0.0.0:0", "--otlp-grpc", a[1], "--otlp-http", a[2]}},
		{"--otlp-grpc", []string{"--http", a[0], "--otlp-grpc", "0.0.0.0:0", "--otlp-http", a[2]}},
		{"--otlp-http", []string{"--http", a[0], "--otlp-grpc", a[1], "--otlp-http", ":0"}},
	} {
		cmd := exec.Command(bin, append([]string{"server", "--data", t.TempDir()}, tc.args...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.flag+" ") || !strings.Contains(string(out), "--insecure") {
			t.Errorf("%s on every interface without auth: %v\n%s", tc.flag, err, out)
		}
	}
	bad := filepath.Join(t.TempDir(), "auth.yaml")
	os.WriteFile(bad, []byte("tokens:\n  - {name: ci, role: root, sha256: abc}\n"), 0o600)
	out, err := exec.Command(bin, append([]string{"server", "--data", t.TempDir(), "--auth-file", bad}, loop...)...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "tokens[0].role") {
		t.Errorf("bad auth file: %v\n%s", err, out)
	}
}

// TestDemoAuth: the demo runs its server with a generated admin token,
// prints it, applies its policies and connects its proxies with tokens.
func TestDemoAuth(t *testing.T) {
	bin, _ := binaries(t)
	httpAddr := freeAddrs(t, 1)[0]
	data := t.TempDir()
	p := startProc(t, "meshscope-demo-auth", bin, "demo", "--http", httpAddr, "--data", data, "--duration", "2m", "--rate", "5")
	poll(t, 120*time.Second, "the demo to print its UI URL", func() (bool, string) {
		return strings.Contains(p.output(), "Meshscope UI: http://"+httpAddr+"/"), p.tail(3)
	}, p)
	var token string
	for _, l := range strings.Split(p.output(), "\n") {
		if v, ok := strings.CutPrefix(l, "Admin token: "); ok {
			token = v
		}
	}
	if !strings.HasPrefix(token, "msk_") {
		t.Fatalf("no admin token printed:\n%s", p.tail(20))
	}
	base := "http://" + httpAddr + control.APIPrefix
	if code, _ := call(t, "GET", base+"/policies", "", ""); code != 401 {
		t.Errorf("demo API without the token: %d, want 401", code)
	}
	code, b := call(t, "GET", base+"/history", token, "")
	var h control.HistoryView
	if code != 200 || json.Unmarshal(b, &h) != nil || len(h.Entries) == 0 || h.Entries[0].Who != "demo-admin" {
		t.Errorf("demo history with the admin token: %d %s", code, b)
	}
	poll(t, 60*time.Second, "the demo's proxies connected with their token", func() (bool, string) {
		code, b := call(t, "GET", base+"/endpoints", token, "")
		var v control.EndpointsView
		_ = json.Unmarshal(b, &v)
		connected := 0
		for _, px := range v.Proxies {
			if px.Connected {
				connected++
			}
		}
		return code == 200 && connected >= 7, fmt.Sprintf("%d %d connected", code, connected)
	}, p)
}

// TestAuthServerTLS: --tls-cert/--tls-key serve the HTTP listener and both
// OTLP listeners over TLS (OTLP/gRPC as h2 over TLS), with auth on top.
func TestAuthServerTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	at := makeTokens(t, "viewer", "ingest")
	bin, _ := binaries(t)
	a := freeAddrs(t, 3)
	p := startProc(t, "meshscope-server-tls", bin, "server", "--data", t.TempDir(), "--http", a[0], "--otlp-grpc", a[1], "--otlp-http", a[2],
		"--auth-file", at.authFile, "--tls-cert", certFile, "--tls-key", keyFile)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	poll(t, 90*time.Second, "the server over TLS", func() (bool, string) {
		res, err := client.Get("https://" + a[0] + "/ready")
		if err != nil {
			return false, err.Error()
		}
		res.Body.Close()
		return res.StatusCode == 200, res.Status
	}, p)
	// Plaintext HTTP to the TLS listener fails.
	if res, err := httpClient.Get("http://" + a[0] + "/ready"); err == nil && res.StatusCode == 200 {
		t.Error("plaintext HTTP answered 200 on the TLS listener")
	}
	req, _ := http.NewRequest("GET", "https://"+a[0]+control.APIPrefix+"/policies", nil)
	req.Header.Set("Authorization", "Bearer "+at.token["viewer"])
	res, err := client.Do(req)
	if err != nil || res.StatusCode != 200 || res.ProtoMajor != 2 {
		t.Fatalf("policies over TLS: %v %v", err, res)
	}
	res.Body.Close()
	// OTLP/HTTP over TLS.
	body, _ := proto.Marshal(traceRequest(3, 2))
	req, _ = http.NewRequest("POST", "https://"+a[2]+"/v1/traces", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Authorization", "Bearer "+at.token["ingest"])
	if res, err := client.Do(req); err != nil || res.StatusCode != 200 {
		t.Errorf("OTLP/HTTP over TLS: %v %v", err, res)
	}
	// OTLP/gRPC over TLS.
	conn, err := grpc.NewClient(a[1], grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := coltracepb.NewTraceServiceClient(conn).Export(ctx, traceRequest(4, 2)); status.Code(err) != codes.Unauthenticated {
		t.Errorf("OTLP/gRPC over TLS without a token: %v, want UNAUTHENTICATED", err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+at.token["ingest"])
	if _, err := coltracepb.NewTraceServiceClient(conn).Export(ctx, traceRequest(5, 2)); err != nil {
		t.Errorf("OTLP/gRPC over TLS with the ingest token: %v", err)
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "meshscope-e2e"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestAuthProxyOverTLS: a proxy reaches a server run with --tls-cert and
// --auth-file over TLS (trusting --server-ca): its control stream over
// wss with a proxy token gets a mesh certificate, and its spans arrive
// through the OTLP/gRPC export over TLS. Proxies with a viewer or an
// ingest token get no stream and no certificate, and say why.
func TestAuthProxyOverTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	at := makeTokens(t, "viewer", "ingest", "proxy")
	bin, _ := binaries(t)
	a := freeAddrs(t, 3)
	s := startProc(t, "meshscope-server-tls", bin, "server", "--data", t.TempDir(), "--http", a[0], "--otlp-grpc", a[1], "--otlp-http", a[2],
		"--auth-file", at.authFile, "--tls-cert", certFile, "--tls-key", keyFile)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", "https://"+a[0]+path, nil)
		req.Header.Set("Authorization", "Bearer "+at.token["viewer"])
		res, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	poll(t, 90*time.Second, "the server over TLS", func() (bool, string) {
		code, b := get("/ready")
		return code == 200, b
	}, s)

	app := startApp(t)
	in := freeAddrs(t, 1)[0]
	startProxy(t, "tls-proxy", "--service", "inventory", "--version", "v1", "--inbound", in+"="+app.addr,
		"--control-plane", "https://"+a[0], "--collector", "https://"+a[1], "--server-ca", certFile,
		"--state-dir", t.TempDir(), "--token-file", at.file["proxy"])
	refused := map[string]*proc{}
	for _, role := range []string{"viewer", "ingest"} {
		rin := freeAddrs(t, 1)[0]
		refused[role], _ = startProxy(t, role+"-proxy", "--service", "cart", "--version", "v1", "--inbound", rin+"="+app.addr,
			"--control-plane", "https://"+a[0], "--server-ca", certFile, "--state-dir", t.TempDir(), "--token-file", at.file[role])
	}
	poll(t, 30*time.Second, "the proxy in /endpoints over TLS", func() (bool, string) {
		code, b := get(control.APIPrefix + "/endpoints?service=inventory")
		var v control.EndpointsView
		_ = json.Unmarshal([]byte(b), &v)
		return code == 200 && len(v.Proxies) == 1 && v.Proxies[0].Connected, b
	}, s)
	poll(t, 30*time.Second, "a mesh certificate issued", func() (bool, string) {
		_, b := get("/metrics")
		return strings.Contains(b, `mesh_ca_certificates_issued_total{result="issued"} 1`), grepLines(b, "mesh_ca_certificates_issued_total")
	}, s)
	// The spans go over OTLP/gRPC with TLS and the proxy's token.
	send(t, in, "/hello", "")
	poll(t, 30*time.Second, "the proxy's spans over TLS", func() (bool, string) {
		code, b := get("/jaeger/api/traces?service=inventory&lookback=1h&limit=20")
		return code == 200 && strings.Contains(b, "traceID"), b
	}, s)
	for role, p := range refused {
		poll(t, 20*time.Second, role+" proxy's refusal", func() (bool, string) {
			out := p.output()
			return strings.Contains(out, "HTTP 403") && strings.Contains(out, "role "+role+" may not stream") &&
				strings.Contains(out, "only tokens of role proxy, operator or admin"), p.tail(5)
		}, p)
	}
	if code, b := get(control.APIPrefix + "/endpoints?service=cart"); code != 200 || strings.Contains(b, `"connected":true`) {
		t.Errorf("a proxy with a viewer or ingest token registered: %d %s", code, b)
	}
	if _, b := get("/metrics"); !strings.Contains(b, `mesh_ca_certificates_issued_total{result="issued"} 1`) {
		t.Errorf("certificates issued beyond the proxy token's: %s", grepLines(b, "mesh_ca_certificates_issued_total"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestAuthTokenAPI: an admin creates a token with `meshscope token create
// --server`, it works at once and outlives a restart (only its hash is on
// disk), non-admins are refused (401 / 403), and a revoked token stops
// working; the changes are in the audit log.
func TestAuthTokenAPI(t *testing.T) {
	at := makeTokens(t, "viewer", "operator", "admin")
	s := startServer(t, "--auth-file", at.authFile)
	bin, _ := binaries(t)
	api := s.url(control.APIPrefix + "/tokens")
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {at.token["viewer"], 403}, {at.token["operator"], 403}, {at.token["admin"], 200}} {
		if code, b := call(t, "GET", api, tc.token, ""); code != tc.want {
			t.Errorf("GET tokens with %q: %d %s, want %d", tc.token, code, b, tc.want)
		}
	}
	if out, err := exec.Command(bin, "token", "create", "--server", s.url(""), "--token-file", at.file["operator"], "--role", "operator", "--name", "x").CombinedOutput(); err == nil || !strings.Contains(string(out), "403") {
		t.Errorf("token create as operator: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "token", "create", "--server", s.url(""), "--token-file", at.file["admin"], "--role", "operator", "--name", "deployer").Output()
	tok := strings.SplitN(string(out), "\n", 2)[0]
	if err != nil || !strings.HasPrefix(tok, "msk_") {
		t.Fatalf("token create --server: %v\n%s", err, out)
	}
	if code, b := call(t, "POST", s.url(control.APIPrefix+"/apply"), tok, inventorySplit); code != 200 {
		t.Errorf("apply with the new operator token: %d %s", code, b)
	}
	b, err := os.ReadFile(filepath.Join(s.data, "auth", "tokens.yaml"))
	if err != nil || strings.Contains(string(b), tok) || !strings.Contains(string(b), "deployer") {
		t.Errorf("token store: %v\n%s", err, b)
	}
	s.proc.stop(t, 20*time.Second)
	s2 := startServer(t, "--auth-file", at.authFile, "--data", s.data)
	if code, b := call(t, "GET", s2.url(control.APIPrefix+"/policies"), tok, ""); code != 200 {
		t.Errorf("the created token after a restart: %d %s", code, b)
	}
	out, err = exec.Command(bin, "token", "list", "--server", s2.url(""), "--token-file", at.file["admin"]).CombinedOutput()
	if err != nil || !regexpMatch(`deployer\s+operator\s+api`, string(out)) || !regexpMatch(`e2e-admin\s+admin\s+auth-file`, string(out)) {
		t.Errorf("token list: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "token", "revoke", "deployer", "--server", s2.url(""), "--token-file", at.file["admin"]).CombinedOutput(); err != nil {
		t.Errorf("token revoke: %v\n%s", err, out)
	}
	if code, _ := call(t, "GET", s2.url(control.APIPrefix+"/policies"), tok, ""); code != 401 {
		t.Errorf("a revoked token: %d, want 401", code)
	}
	_, ab := call(t, "GET", s2.url(audit.Path+"?action=token."), at.token["viewer"], "")
	var page audit.Page
	_ = json.Unmarshal(ab, &page)
	var seen []string
	for _, e := range page.Entries {
		seen = append(seen, e.Action+":"+e.Who+":"+e.Outcome)
	}
	if !slices.Contains(seen, "token.create:e2e-admin:ok") || !slices.Contains(seen, "token.revoke:e2e-admin:ok") {
		t.Errorf("audit entries %v", seen)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
