package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshscope/meshscope/bench/procstat"
	"github.com/meshscope/meshscope/bench/report"
)

// The ingress-gateway rows: meshscope-proxy --gateway (TLS termination and
// JWT validation on every request) against nginx terminating TLS with the
// same certificate, same run, same upstream. Three client behaviours:
// keep-alive (TLS set up once per connection), a new connection per
// request resuming the TLS session (ticket), and a new connection per
// request with a full handshake.

type tlsMode struct{ key, name string }

var tlsModes = []tlsMode{
	{"keepalive", "keep-alive connections"},
	{"resumed", "new connection per request, TLS session resumed"},
	{"handshake", "new connection per request, full TLS handshake"},
}

// gatewayFiles are the generated certificate, key, JWKS and token.
type gatewayFiles struct {
	crt, key, jwks string
	token          string
	pool           *x509.CertPool
}

func makeGatewayFiles(dir string) (*gatewayFiles, error) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour), KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caT, caT, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "shop.bench"}, DNSNames: []string{"shop.bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leafT, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	f := &gatewayFiles{crt: filepath.Join(dir, "shop.crt"), key: filepath.Join(dir, "shop.key"), jwks: filepath.Join(dir, "jwks.json"), pool: x509.NewCertPool()}
	f.pool.AddCert(ca)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	enc := base64.RawURLEncoding.EncodeToString
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]string{"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": enc(pub)}}})
	hdr, _ := json.Marshal(map[string]string{"alg": "EdDSA", "kid": "k1"})
	claims, _ := json.Marshal(map[string]any{"iss": "https://issuer.bench", "aud": "shop", "sub": "bench", "exp": time.Now().Add(24 * time.Hour).Unix()})
	in := enc(hdr) + "." + enc(claims)
	f.token = in + "." + enc(ed25519.Sign(priv, []byte(in)))
	for path, b := range map[string][]byte{
		f.crt:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		f.key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		f.jwks: jwks,
	} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return nil, err
		}
	}
	return f, nil
}

const gatewayDoc = `kind: Gateway
name: bench
service: edge
listeners:
  - address: {{.Listen}}
    tls: {certificates: [{hosts: [shop.bench], cert_file: {{.Dir}}/shop.crt, key_file: {{.Dir}}/shop.key}]}
routes:
  - name: api
    service: app@{{.Upstream}}
    jwt: {issuer: "https://issuer.bench", audiences: [shop], jwks_file: {{.Dir}}/jwks.json, forward_claims: {sub: X-User}}
`

// nginxTLSConf is nginx terminating TLS (TLS 1.2/1.3, session cache and
// tickets on) in front of the same upstream; it validates no token.
const nginxTLSConf = `daemon off;
worker_processes auto;
pid {{.Dir}}/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path {{.Dir}}/client_body;
  proxy_temp_path {{.Dir}}/proxy;
  fastcgi_temp_path {{.Dir}}/fastcgi;
  uwsgi_temp_path {{.Dir}}/uwsgi;
  scgi_temp_path {{.Dir}}/scgi;
  keepalive_requests 1000000;
  upstream app {
    server {{.Upstream}};
    keepalive 64;
  }
  server {
    listen {{.Listen}} ssl;
    ssl_certificate {{.Dir}}/shop.crt;
    ssl_certificate_key {{.Dir}}/shop.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`

// startTLSTarget starts one TLS server (gateway or nginx) and waits until
// a request through it succeeds.
func startTLSTarget(ctx context.Context, key, dir string, argv []string, listen string, f *gatewayFiles) (*target, error) {
	t := &target{key: key, addr: listen}
	p, err := startProcess(dir, key, argv, nil)
	if err != nil {
		return nil, err
	}
	t.proc = p
	c := tlsClient(listen, f, "keepalive")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := c.once(); err == nil {
			return t, nil
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("%s not ready: %v: %s", key, err, p.logTail())
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s exited: %s", key, p.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tlsLoad is one client worker of one mode.
type tlsLoad struct {
	addr string
	f    *gatewayFiles
	mode string
	conf *tls.Config
	conn *tls.Conn
	br   *bufio.Reader
	req  []byte
	// conns and resumed count connections made and TLS sessions resumed.
	conns, resumed int64
}

func tlsClient(addr string, f *gatewayFiles, mode string) *tlsLoad {
	l := &tlsLoad{addr: addr, f: f, mode: mode,
		conf: &tls.Config{ServerName: "shop.bench", RootCAs: f.pool, NextProtos: []string{"http/1.1"}}}
	switch mode {
	case "resumed":
		l.conf.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	case "handshake":
		l.conf.SessionTicketsDisabled = true
	}
	conn := "keep-alive"
	if mode != "keepalive" {
		conn = "close"
	}
	l.req = []byte("GET /api/items HTTP/1.1\r\nHost: shop.bench\r\nAuthorization: Bearer " + f.token + "\r\nConnection: " + conn + "\r\n\r\n")
	return l
}

// once sends one request and reads its response.
func (l *tlsLoad) once() error {
	if l.conn == nil {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", l.addr, l.conf)
		if err != nil {
			return err
		}
		l.conn, l.br = c, bufio.NewReader(c)
		l.conns++
		if c.ConnectionState().DidResume {
			l.resumed++
		}
	}
	_ = l.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := l.conn.Write(l.req); err != nil {
		l.reset()
		return err
	}
	res, err := http.ReadResponse(l.br, nil)
	if err != nil {
		l.reset()
		return err
	}
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err == nil && res.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", res.StatusCode)
	}
	if err != nil || l.mode != "keepalive" {
		l.reset()
	}
	return err
}

func (l *tlsLoad) reset() {
	if l.conn != nil {
		_ = l.conn.Close()
		l.conn = nil
	}
}

// tlsCell is one target × mode measurement.
type tlsCell struct {
	requests, errors int64
	elapsed          time.Duration
	cpu              time.Duration
	firstErr         string
	conns, resumed   int64
}

func (c tlsCell) cpuPerReq() float64 {
	if c.requests == 0 {
		return math.NaN()
	}
	return c.cpu.Seconds() / float64(c.requests+c.errors)
}

// runTLSRound drives workers closed-loop against t for d and adds the
// result to c.
func runTLSRound(ctx context.Context, t *target, f *gatewayFiles, mode string, workers int, d time.Duration, c *tlsCell) {
	var ok, bad, conns, resumed atomic.Int64
	var firstErr atomic.Value
	cpu0, _ := procstat.CPUTime(t.pid())
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := tlsClient(t.addr, f, mode)
			defer func() {
				l.reset()
				conns.Add(l.conns)
				resumed.Add(l.resumed)
			}()
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if err := l.once(); err != nil {
					bad.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	cpu1, _ := procstat.CPUTime(t.pid())
	c.requests += ok.Load()
	c.errors += bad.Load()
	c.elapsed += time.Since(start)
	c.conns += conns.Load()
	c.resumed += resumed.Load()
	c.cpu += cpu1 - cpu0
	if s, _ := firstErr.Load().(string); s != "" && c.firstErr == "" {
		c.firstErr = s
	}
}

// gatewayBench adds the gateway-vs-nginx TLS rows to r.
func gatewayBench(ctx context.Context, o options, r *report.Result, base, upstream, proxyBin string) error {
	dir, err := targetDir(base, "gateway")
	if err != nil {
		return err
	}
	f, err := makeGatewayFiles(dir)
	if err != nil {
		return err
	}
	var targets []*target
	defer func() {
		for _, t := range targets {
			t.proc.stop()
		}
	}()
	if proxyBin != "" {
		listen, err := freePort()
		if err != nil {
			return err
		}
		admin, err := freePort()
		if err != nil {
			return err
		}
		doc, err := render(gatewayDoc, proxyConfig{Dir: dir, Listen: listen, Upstream: upstream})
		if err != nil {
			return err
		}
		cfg := filepath.Join(dir, "gateway.yaml")
		if err := os.WriteFile(cfg, doc, 0o644); err != nil {
			return err
		}
		t, err := startTLSTarget(ctx, "gateway", dir, []string{proxyBin, "--gateway", "--service", "edge", "--config", cfg, "--admin", admin}, listen, f)
		if err != nil {
			r.Note("meshscope-proxy --gateway was not measured: %v", err)
		} else {
			t.name = "meshscope-proxy --gateway (TLS + JWT)"
			targets = append(targets, t)
		}
	}
	if bin, err := lookSbin("nginx"); err == nil {
		ndir, err := targetDir(base, "nginx-tls")
		if err != nil {
			return err
		}
		for _, name := range []string{"shop.crt", "shop.key"} {
			b, _ := os.ReadFile(filepath.Join(dir, name))
			if err := os.WriteFile(filepath.Join(ndir, name), b, 0o644); err != nil {
				return err
			}
		}
		listen, err := freePort()
		if err != nil {
			return err
		}
		conf, err := render(nginxTLSConf, proxyConfig{Dir: ndir, Listen: listen, Upstream: upstream})
		if err != nil {
			return err
		}
		cpath := filepath.Join(ndir, "nginx.conf")
		if err := os.WriteFile(cpath, conf, 0o644); err != nil {
			return err
		}
		name := "nginx"
		if v := toolVersion(bin, "-v"); v != "" {
			name = "nginx " + v
		}
		t, err := startTLSTarget(ctx, "nginx-tls", ndir, []string{bin, "-e", "stderr", "-p", ndir, "-c", cpath}, listen, f)
		if err != nil {
			r.Note("nginx with TLS was not measured: %v", err)
		} else {
			t.name = name + " (TLS only)"
			targets = append(targets, t)
		}
	} else {
		r.Note("nginx with TLS was not measured: nginx not installed")
	}
	workers, round, rounds := 8, 2*time.Second, 3
	if o.quick {
		round, rounds = time.Second, 1
	}
	cells := map[string]*tlsCell{}
	for _, m := range tlsModes {
		logf("gateway TLS, %s: %d target(s), %d round(s) of %v", m.key, len(targets), rounds, round)
		for i := range rounds {
			for j := range targets {
				t := targets[(i+j)%len(targets)]
				k := t.key + "/" + m.key
				if cells[k] == nil {
					cells[k] = &tlsCell{}
				}
				runTLSRound(ctx, t, f, m.key, workers, round, cells[k])
			}
		}
	}
	tab := r.AddTable(fmt.Sprintf("Ingress gateway with TLS vs nginx with TLS, closed loop, %d client workers", workers),
		"target", "client behaviour", "req/s", "errors", "TLS connections", "resumed", "CPU ms per 1000 req", "vs nginx")
	var ratio = map[string]float64{}
	for _, m := range tlsModes {
		ng := cells["nginx-tls/"+m.key]
		for _, t := range targets {
			c := cells[t.key+"/"+m.key]
			rel := "—"
			if t.key == "gateway" && ng != nil && ng.requests > 0 {
				ratio[m.key] = c.cpuPerReq() / ng.cpuPerReq()
				rel = report.Num(ratio[m.key]) + "×"
			}
			tab.AddRow(t.name, m.name, report.Num(float64(c.requests)/c.elapsed.Seconds()),
				fmt.Sprint(c.errors), fmt.Sprint(c.conns), fmt.Sprint(c.resumed), report.Num(c.cpuPerReq()*1e6), rel)
			if c.errors > 0 {
				r.Note("%s, %s: %d errors (first: %s)", t.name, m.name, c.errors, c.firstErr)
			}
		}
	}
	tab.Note("Every request carries an EdDSA JWT that the gateway validates (signature, iss, aud, exp) and forwards a claim of as a header; nginx (no JWT module) only terminates TLS, so the gateway does strictly more work per request. Same ECDSA P-256 certificate, TLS 1.3, same upstream. CPU is utime+stime of the server's processes; nginx runs one worker per core, the gateway its default of one core (--max-procs 1). The load generator shares the machine's cores.")
	for _, m := range tlsModes {
		if v, ok := ratio[m.key]; ok {
			r.AtMost("gateway CPU per request vs nginx, TLS, "+m.name, 1.25, v, "×")
		}
	}
	return nil
}
