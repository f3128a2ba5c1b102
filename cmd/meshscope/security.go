package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/auth"
	"github.com/meshscope/meshscope/control/jsonlog"
)

// securityConfig is the `security` section of the server config.
type securityConfig struct {
	// AuthFile is the --auth-file (tokens and users with roles). Empty =
	// no authentication: then every listener must be loopback unless
	// Insecure.
	AuthFile string `yaml:"auth_file"`
	// Insecure allows non-loopback listeners without an auth file.
	Insecure bool `yaml:"insecure"`
	// TLSCert and TLSKey (PEM files) serve the HTTP and OTLP listeners
	// over TLS; reloaded when they change.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// TokenStore keeps the tokens admins create through the token API
	// (SHA-256 only). Default <data>/auth/tokens.yaml.
	TokenStore string `yaml:"token_store"`
	// Audit configures the audit log (Dir default <data>/audit).
	Audit audit.Config `yaml:"audit"`
}

func bindSecurityFlags(fs *flag.FlagSet, c *securityConfig) {
	fs.StringVar(&c.AuthFile, "auth-file", c.AuthFile, "YAML `file` of tokens and users with roles; without it the server binds loopback only")
	fs.BoolVar(&c.Insecure, "insecure", c.Insecure, "allow non-loopback --http/--otlp-* addresses without --auth-file")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate `file` for TLS on the HTTP and OTLP listeners")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM key `file` for --tls-cert")
	fs.Var(durationValue{&c.Audit.Retention}, "audit-retention", "keep audit log entries this long (e.g. 365d)")
	fs.Var(bytesValue{&c.Audit.MaxBytes}, "audit-max-bytes", "cap the audit log's size on disk (oldest segments go first)")
}

// validate names the bad flag: TLS files come in pairs, and without an
// auth file every listener binds loopback unless --insecure.
func (c securityConfig) validate(httpAddr, otlpGRPC, otlpHTTP string) error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key: give both or neither")
	}
	if c.AuthFile != "" {
		if _, err := auth.LoadFile(c.AuthFile); err != nil {
			return err
		}
	}
	for _, l := range []struct{ flag, addr string }{{"http", httpAddr}, {"otlp-grpc", otlpGRPC}, {"otlp-http", otlpHTTP}} {
		if err := auth.CheckBind(l.flag, l.addr, c.AuthFile != "", c.Insecure); err != nil {
			return err
		}
	}
	if err := c.Audit.Validate(); err != nil {
		return fmt.Errorf("security.audit: %w", err)
	}
	return nil
}

// security is the wired authentication, TLS and audit log of a server.
type security struct {
	auth  *auth.Authenticator
	tls   *tls.Config // nil = plaintext
	audit auditLog
}

// auditLog is the server's audit log: a file log, or the cluster's.
type auditLog interface {
	audit.Recorder
	audit.Querier
	RegisterRoutes(mux *http.ServeMux)
	Close() error
}

// openSecurity opens auth, TLS and the audit log: the file log in
// c.Audit.Dir, or shared (non-nil) with --state-store etcd.
func openSecurity(c securityConfig, shared jsonlog.Journal, reg prometheus.Registerer, logger *slog.Logger) (*security, error) {
	s := &security{}
	var file *auth.File
	if c.AuthFile != "" {
		f, err := auth.LoadFile(c.AuthFile)
		if err != nil {
			return nil, err
		}
		file = f
		logger.Info("authentication on", "auth_file", c.AuthFile, "tokens", len(f.Tokens), "users", len(f.Users))
	} else {
		logger.Warn("authentication off: every caller is an admin (give --auth-file to turn it on)")
	}
	if c.TLSCert != "" {
		t, err := auth.ServerTLS(c.TLSCert, c.TLSKey, "h2", "http/1.1")
		if err != nil {
			return nil, err
		}
		s.tls = t
	}
	a, err := auth.New(auth.Config{File: file, SecureCookies: s.tls != nil, TokenStore: c.TokenStore}, reg, logger)
	if err != nil {
		return nil, err
	}
	s.auth = a
	if shared != nil {
		s.audit, err = audit.OpenShared(shared, reg, logger.With("component", "audit"))
		logger.Info("audit log shared by the cluster's servers (etcd)")
	} else {
		s.audit, err = audit.Open(c.Audit, reg, logger.With("component", "audit"))
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// ingestWrap authenticates the OTLP listeners (nil when auth is off).
func (s *security) ingestWrap() func(http.Handler) http.Handler {
	if !s.auth.Enabled() {
		return nil
	}
	return func(h http.Handler) http.Handler { return s.auth.MiddlewareFor(auth.IngestOnly, h) }
}

func (s *security) scheme() string {
	if s.tls != nil {
		return "https"
	}
	return "http"
}
