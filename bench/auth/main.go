// Command auth benchmarks the server's security layer in process: the
// cost the authentication middleware adds to one HTTP call (auth off, a
// bearer token checked against 10 and 100 tokens, a cookie session, a
// refused call), and the latency of one durable (fsync'd) audit log
// append on the data directory's file system.
//
//	go run ./bench/auth [-quick] [-appends 2000]
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/meshscope/meshscope/bench/report"
	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/auth"
)

var (
	quick   = flag.Bool("quick", false, "short run")
	appends = flag.Int("appends", 2000, "audit appends measured")
	out     = flag.String("out", "auth", "result file, or a part name for bench/results/<part>[.quick].json")
)

func main() {
	flag.Parse()
	if *quick {
		*appends = 300
	}
	r := report.New("auth")
	r.Title = "Server authentication middleware and audit log"
	r.Quick = *quick

	base := nsPerOp(func(b *testing.B) {
		h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
		req := httptest.NewRequest("GET", "/api/mesh/v1/policies", nil)
		for b.Loop() {
			h.ServeHTTP(discard{}, req)
		}
	})
	t := r.AddTable("Middleware cost per call (GET /api/mesh/v1/policies, handler does nothing)",
		"case", "ns/call", "added ns/call")
	t.AddRow("no middleware", report.Num(base), "0")
	var tokenAdded float64
	for _, c := range []struct {
		name   string
		tokens int
		mode   string
	}{
		{"auth off (no --auth-file)", 0, "off"},
		{"bearer token, 10 tokens in the file", 10, "token"},
		{"bearer token, 100 tokens in the file", 100, "token"},
		{"cookie session", 10, "session"},
		{"no credentials → 401", 10, "none"},
	} {
		ns := middlewareCost(c.tokens, c.mode)
		t.AddRow(c.name, report.Num(ns), report.Num(ns-base))
		if c.tokens == 100 {
			tokenAdded = ns - base
		}
	}
	r.AtMost("middleware added per call, bearer token with 100 tokens", 10_000, tokenAdded, "ns").Note =
		"sha256 of the token plus a constant-time compare with every entry"

	dir, err := os.MkdirTemp(".", ".bench-audit-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	cfg := audit.DefaultConfig()
	cfg.Dir = dir
	l, err := audit.Open(cfg, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx := auth.WithIdentity(context.Background(), auth.Identity{Name: "ci", Role: auth.RoleOperator, Method: auth.MethodToken, Addr: "127.0.0.1"})
	diff := strings.Repeat("+         weight: 80\n", 20)
	var lat []float64
	start := time.Now()
	for i := range *appends {
		t0 := time.Now()
		if err := l.Record(ctx, audit.Entry{Action: "apply", Targets: []string{"Route/web"}, Version: uint64(i + 1), Diff: diff}); err != nil {
			log.Fatal(err)
		}
		lat = append(lat, float64(time.Since(t0).Microseconds())/1000)
	}
	total := time.Since(start)
	l.Close()
	sort.Float64s(lat)
	p := func(q float64) float64 { return lat[min(len(lat)-1, int(q*float64(len(lat))))] }
	at := r.AddTable("Audit append (JSON line with a 20-line diff, write + fsync), ext4 data dir",
		"appends", "p50 ms", "p90 ms", "p99 ms", "max ms", "appends/s")
	at.AddRow(fmt.Sprint(len(lat)), report.Num(p(0.5)), report.Num(p(0.9)), report.Num(p(0.99)), report.Num(lat[len(lat)-1]),
		report.Num(float64(len(lat))/total.Seconds()))
	r.AtMost("audit append p99", 20, p(0.99), "ms").Note = "one fsync per entry, as the policy store's own log"
	r.Note("machine shared with other jobs; load average at start %s", r.Machine.LoadAverage)
	path, err := report.Write(*out, r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote", path)
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(b []byte) (int, error) { return len(b), nil }
func (discard) WriteHeader(int)             {}

func nsPerOp(f func(b *testing.B)) float64 {
	res := testing.Benchmark(f)
	return float64(res.T.Nanoseconds()) / float64(res.N)
}

func middlewareCost(tokens int, mode string) float64 {
	var file *auth.File
	var tok string
	if mode != "off" {
		file = &auth.File{}
		for i := range tokens {
			t, _ := auth.NewToken()
			if i == tokens-1 {
				tok = t
			}
			file.Tokens = append(file.Tokens, auth.Token{Name: fmt.Sprintf("t%d", i), Role: auth.RoleViewer, SHA256: auth.HashToken(t)})
		}
		h, _ := bcrypt.GenerateFromPassword([]byte("password1"), bcrypt.MinCost)
		file.Users = []auth.User{{Name: "alice", Role: auth.RoleViewer, Bcrypt: string(h)}}
	}
	a, err := auth.New(auth.Config{File: file}, nil, nil)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	a.RegisterRoutes(mux)
	mux.HandleFunc("/api/mesh/v1/policies", func(http.ResponseWriter, *http.Request) {})
	h := a.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest("GET", "/api/mesh/v1/policies", nil)
	switch mode {
	case "token":
		req.Header.Set("Authorization", "Bearer "+tok)
	case "session":
		w := httptest.NewRecorder()
		a.Middleware(mux).ServeHTTP(w, httptest.NewRequest("POST", auth.PathLogin, strings.NewReader(`{"name":"alice","password":"password1"}`)))
		for _, c := range w.Result().Cookies() {
			req.AddCookie(c)
		}
	}
	return nsPerOp(func(b *testing.B) {
		for b.Loop() {
			h.ServeHTTP(discard{}, req)
		}
	})
}
