package controlclient

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	cpolicy "github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/wire"
	"github.com/meshscope/meshscope/proxy/policy/chain"
)

// Config says where the control plane is and who this proxy is.
type Config struct {
	// URL is the control plane's base URL (http://host:port), or several
	// servers of one control plane separated by commas: the client holds
	// one stream to one of them and moves to the next when it fails. The
	// stream is at wire.Path.
	URL string
	// StateDir holds the last good snapshot (snapshot.json).
	StateDir string
	// ProxyID identifies this proxy; empty = service-version-random.
	ProxyID   string
	Service   string
	Version   string
	Mode      string   // the proxy's --mode
	Inbound   []string // addresses callers reach this instance at
	Upstreams []string // services this proxy calls
	// MTLS are the inbound addresses accepting mesh mTLS (a subset of
	// Inbound); Mesh receives certificates and peers. Both nil: no mTLS.
	MTLS []string
	Mesh Mesh
	// StatusInterval is how often endpoint state is checked and, when it
	// changed, reported. Default 1s.
	StatusInterval time.Duration
	// Token is the bearer token for a server run with --auth-file; "" = none.
	Token string
	// TLS is the client config of an https:// URL (the roots of
	// --server-ca); nil = system roots.
	TLS *tls.Config
	// MinBackoff and MaxBackoff bound the reconnect delay (full jitter).
	// Defaults 250ms and 15s.
	MinBackoff, MaxBackoff time.Duration
	// OnSnapshot, if set, is called with every snapshot applied (received
	// or restored): the ingress gateway takes its Gateway document from it.
	OnSnapshot func(*wire.Snapshot)
}

// Engine is where snapshots go and where endpoint state comes from.
type Engine interface {
	Apply(chain.Spec)
	Endpoints(now time.Time) []chain.EndpointState
	// Health is the local app's health ("healthy", "unhealthy", "" =
	// unknown) from the own service's enforced health check.
	Health() string
}

// Mesh is the proxy's mTLS identity as the control client drives it
// (proxy.MeshHooks).
type Mesh interface {
	// CertRequest returns a PEM CSR when a certificate is due, else nil.
	CertRequest() []byte
	// Issued installs the answer to the last request.
	Issued(*wire.Cert) error
	// ConnectionLost forgets an unanswered request.
	ConnectionLost()
	// Snapshot takes peers and security policies from a snapshot.
	Snapshot(*wire.Snapshot) error
}

// Client is the control-plane connection; a lifecycle runner.
type Client struct {
	cfg    Config
	engine Engine
	logger *slog.Logger
	state  string   // snapshot file
	urls   []string // the servers, tried in turn

	connected prometheus.Gauge
	version   prometheus.Gauge
	updates   *prometheus.CounterVec

	mu      sync.Mutex
	current uint64 // applied snapshot version
}

// stateFile is the snapshot file's name in the state directory.
const stateFile = "snapshot.json"

// New returns a client and applies the snapshot persisted in cfg.StateDir,
// if any, so the proxy routes by its last known config before (or
// without) reaching the control plane.
func New(cfg Config, engine Engine, reg prometheus.Registerer, logger *slog.Logger) (*Client, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var urls []string
	for _, raw := range strings.Split(cfg.URL, ",") {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--control-plane %q: want http://host:port (several separated by commas)", raw)
		}
		urls = append(urls, u.String())
	}
	if cfg.StateDir == "" {
		return nil, errors.New("--state-dir: required with --control-plane")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("--state-dir: %w", err)
	}
	if cfg.ProxyID == "" {
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		cfg.ProxyID = cfg.Service + "-" + cfg.Version + "-" + hex.EncodeToString(b)
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(15*time.Second, cfg.MinBackoff)
	}
	c := &Client{cfg: cfg, engine: engine, logger: logger.With("component", "control-client"),
		state: filepath.Join(cfg.StateDir, stateFile), urls: urls,
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshscope_proxy_control_connected",
			Help: "1 while the proxy holds a stream to the control plane."}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{Name: "meshscope_proxy_policy_version",
			Help: "Version of the applied control-plane snapshot (0 = none)."}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshscope_proxy_control_snapshots_total",
			Help: "Control-plane snapshots by result (applied, rejected, restored from the state directory)."}, []string{"result"}),
	}
	for _, col := range []prometheus.Collector{c.connected, c.version, c.updates} {
		if err := reg.Register(col); err != nil {
			return nil, fmt.Errorf("control client metrics: %w", err)
		}
	}
	c.restore()
	return c, nil
}

// restore applies the persisted snapshot, if there is a good one.
func (c *Client) restore() {
	b, err := os.ReadFile(c.state)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		c.logger.Warn("cannot read the persisted snapshot", "file", c.state, "err", err)
		return
	}
	msg, err := wire.Decode(b)
	snap, ok := msg.(*wire.Snapshot)
	if err != nil || !ok {
		c.logger.Warn("persisted snapshot unreadable; starting without it", "file", c.state, "err", err)
		return
	}
	spec, err := Compile(snap)
	if err != nil {
		c.logger.Warn("persisted snapshot does not compile; starting without it", "file", c.state, "err", err)
		return
	}
	c.engine.Apply(spec)
	if c.cfg.Mesh != nil {
		if err := c.cfg.Mesh.Snapshot(snap); err != nil {
			c.logger.Warn("persisted snapshot: security policies", "err", err)
		}
	}
	if c.cfg.OnSnapshot != nil {
		c.cfg.OnSnapshot(snap)
	}
	c.setCurrent(snap.Version)
	c.updates.WithLabelValues("restored").Inc()
	c.logger.Info("restored the last snapshot", "version", snap.Version, "file", c.state)
}

func (c *Client) setCurrent(v uint64) {
	c.mu.Lock()
	c.current = v
	c.mu.Unlock()
	c.version.Set(float64(v))
}

// Current is the applied snapshot version (0 = none).
func (c *Client) Current() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// errRefused is the server refusing the proxy's credentials: retrying
// does not help until the token changes.
var errRefused = errors.New("the control plane refused this proxy's credentials")

// refusal explains a failed stream handshake, with the server's reason.
func refusal(u string, res *http.Response, err error) error {
	var body struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(io.LimitReader(res.Body, 4096)).Decode(&body)
	switch res.StatusCode {
	case http.StatusUnauthorized:
		return fmt.Errorf("%w (HTTP 401: %s): give --token-file a token of role proxy, operator or admin from the server's --auth-file", errRefused, body.Error)
	case http.StatusForbidden:
		return fmt.Errorf("%w (HTTP 403: %s): only tokens of role proxy, operator or admin open the control stream and get mesh certificates", errRefused, body.Error)
	}
	return fmt.Errorf("dial %s: %w (status %d)", u, err, res.StatusCode)
}

// Run keeps a stream to the control plane until ctx ends. When a stream
// fails it tries the next server at once; once every server failed in a
// row it backs off. The proxy serves with its last config meanwhile.
func (c *Client) Run(ctx context.Context) error {
	backoff := c.cfg.MinBackoff
	failed := 0 // servers failed in a row
	for i := 0; ; i = (i + 1) % len(c.urls) {
		start := time.Now()
		connected, err := c.session(ctx, c.urls[i])
		c.connected.Set(0)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			failed = 0
		}
		if time.Since(start) > c.cfg.MaxBackoff {
			backoff = c.cfg.MinBackoff // the session was up for a while
		}
		if failed++; failed < len(c.urls) && !errors.Is(err, errRefused) {
			c.logger.Warn("control plane server lost; trying the next one", "err", err, "next", c.urls[(i+1)%len(c.urls)], "version", c.Current())
			continue
		}
		failed = 0
		wait := time.Duration(mrand.Int64N(int64(backoff)) + 1)
		if errors.Is(err, errRefused) {
			backoff = c.cfg.MaxBackoff
			wait = backoff
			c.logger.Error("no control stream and no mesh certificate", "err", err, "retry_in", wait)
		} else {
			c.logger.Warn("control plane unreachable; serving with the last applied config", "err", err,
				"version", c.Current(), "retry_in", wait.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, c.cfg.MaxBackoff)
	}
}

func streamURL(base string) string {
	u, _ := url.Parse(base)
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + wire.Path
	return u.String()
}

// session runs one stream to server base: hello, then snapshots in and
// status out. connected says whether the hello went out.
func (c *Client) session(ctx context.Context, base string) (connected bool, _ error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: nil, TLSClientConfig: c.cfg.TLS}
	hdr := http.Header{"User-Agent": {"meshscope-proxy"}}
	if c.cfg.Token != "" {
		hdr.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	conn, res, err := d.DialContext(ctx, streamURL(base), hdr)
	if err != nil {
		if res != nil {
			return false, refusal(streamURL(base), res, err)
		}
		return false, fmt.Errorf("dial %s: %w", streamURL(base), err)
	}
	var reader sync.WaitGroup
	defer reader.Wait() // after the close below: no apply runs once the session ended
	defer conn.Close()
	conn.SetReadLimit(wire.MaxServerMessage)
	hello := &wire.Hello{Protocol: wire.Protocol, ProxyID: c.cfg.ProxyID, Service: c.cfg.Service, Version: c.cfg.Version,
		Inbound: c.cfg.Inbound, Mode: cpolicy.Mode(c.cfg.Mode), Upstreams: c.cfg.Upstreams, ConfigVersion: c.Current(), MTLS: c.cfg.MTLS}
	if err := c.write(conn, hello); err != nil {
		return false, err
	}
	c.connected.Set(1)
	c.logger.Info("connected to the control plane", "url", base, "proxy_id", c.cfg.ProxyID)

	_ = conn.SetReadDeadline(time.Now().Add(wire.PongWait))
	conn.SetPingHandler(func(data string) error {
		_ = conn.SetReadDeadline(time.Now().Add(wire.PongWait))
		return conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(wire.WriteWait))
	})

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	applied := make(chan struct{}, 1)
	errc := make(chan error, 1)
	reader.Add(1)
	go func() {
		defer reader.Done()
		errc <- c.read(conn, applied)
	}()

	if c.cfg.Mesh != nil {
		defer c.cfg.Mesh.ConnectionLost()
	}
	tick := time.NewTicker(c.cfg.StatusInterval)
	defer tick.Stop()
	var last []wire.EndpointStatus
	lastHealth := ""
	sent := false
	for {
		select {
		case <-sctx.Done():
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "proxy stopping"), time.Now().Add(time.Second))
			return true, nil
		case err := <-errc:
			return true, err
		case <-applied:
			sent = false
		case <-tick.C:
		}
		if c.cfg.Mesh != nil {
			if csr := c.cfg.Mesh.CertRequest(); csr != nil {
				if err := c.write(conn, &wire.CertRequest{CSR: string(csr)}); err != nil {
					return true, err
				}
			}
		}
		eps, health := c.endpointStatus(), c.engine.Health()
		if sent && health == lastHealth && reflect.DeepEqual(eps, last) {
			continue
		}
		if health == "" {
			health = wire.HealthUnknown
		}
		if err := c.write(conn, &wire.Status{ConfigVersion: c.Current(), Health: health, Endpoints: eps}); err != nil {
			return true, err
		}
		last, lastHealth, sent = eps, c.engine.Health(), true
	}
}

// endpointStatus lists the endpoints this proxy ejected.
func (c *Client) endpointStatus() []wire.EndpointStatus {
	var out []wire.EndpointStatus
	for _, e := range c.engine.Endpoints(time.Now()) {
		if !e.Ejected {
			continue
		}
		s := wire.EndpointStatus{Service: e.Service, Address: e.Addr, Until: e.Until, Ejected: true,
			Reason: "consecutive 5xx (outlier detection)"}
		if !e.Enforced {
			s.Reason += "; observe mode: not enforced"
		}
		out = append(out, s)
	}
	return out
}

func (c *Client) write(conn *websocket.Conn, msg any) error {
	b, err := wire.Encode(msg)
	if err != nil {
		return err
	}
	_ = conn.SetWriteDeadline(time.Now().Add(wire.WriteWait))
	if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// read applies snapshots until the stream fails.
func (c *Client) read(conn *websocket.Conn, applied chan<- struct{}) error {
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(wire.PongWait))
		msg, err := wire.Decode(data)
		if err != nil {
			if errors.Is(err, wire.ErrUnknownType) {
				continue // a newer server's message kind
			}
			c.logger.Warn("bad message from the control plane", "err", err)
			continue
		}
		switch m := msg.(type) {
		case *wire.Snapshot:
			if err := c.apply(m, data); err != nil {
				c.updates.WithLabelValues("rejected").Inc()
				c.logger.Error("snapshot rejected; keeping the previous config", "version", m.Version, "err", err)
				continue
			}
			select {
			case applied <- struct{}{}:
			default:
			}
		case *wire.Cert:
			if c.cfg.Mesh != nil {
				if err := c.cfg.Mesh.Issued(m); err != nil {
					c.logger.Warn("no mesh certificate; mTLS waits for the next request", "err", err)
				}
			}
		case *wire.Error:
			return fmt.Errorf("control plane: %s", m.Message)
		}
	}
}

// apply compiles, applies and persists one snapshot.
func (c *Client) apply(s *wire.Snapshot, raw []byte) error {
	spec, err := Compile(s)
	if err != nil {
		return err
	}
	if c.cfg.Mesh != nil {
		if err := c.cfg.Mesh.Snapshot(s); err != nil {
			return err
		}
	}
	c.engine.Apply(spec)
	if c.cfg.OnSnapshot != nil {
		c.cfg.OnSnapshot(s)
	}
	if err := writeAtomic(c.state, raw); err != nil {
		c.logger.Warn("cannot persist the snapshot", "file", c.state, "err", err)
	}
	c.setCurrent(s.Version)
	c.updates.WithLabelValues("applied").Inc()
	c.logger.Info("applied snapshot", "version", s.Version, "services", len(s.Services))
	return nil
}

// writeAtomic writes b to path through a synced temporary file and a
// rename, so a crash leaves the old file or the new one, never a torn one.
func writeAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".snapshot-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
