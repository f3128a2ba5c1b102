package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed all:dist
var dist embed.FS

// ContentSecurityPolicy is sent with every UI response. The bundle loads
// nothing from other origins; the graph stream is a same-origin WebSocket.
const ContentSecurityPolicy = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data: blob:; " +
	"style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; base-uri 'self'; " +
	"form-action 'self'; frame-ancestors 'none'"

// notBuiltPage is served when the embedded bundle holds no index.html.
const notBuiltPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Meshscope: UI not built</title></head>
<body><h1>Meshscope</h1>
<p>The web UI is not built into this binary. Run <code>make build</code> (it bundles ui/web into ui/dist, then builds bin/meshscope) and restart the server.</p>
<p>The HTTP APIs (<code>/api/mesh/graph</code>, <code>/api/v1/query</code>, <code>/jaeger/api/...</code>) work without it.</p>
</body></html>
`

// apiPrefixes are paths that belong to the HTTP APIs: an unknown path under
// them is a 404, never the SPA's index.html.
var apiPrefixes = []string{"/api/", "/jaeger/", "/metrics", "/v1/", "/debug/"}

// file is one static file of the bundle, read once at start-up.
type file struct {
	body        []byte
	etag        string
	contentType string
}

// Server serves the UI bundle from a file system.
type Server struct {
	files    map[string]file // by clean path without leading slash
	index    *file
	modified time.Time
}

// Handler returns the handler of the embedded UI bundle.
func Handler() http.Handler {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		// dist is embedded at compile time; Sub on a literal valid path cannot fail.
		panic(fmt.Sprintf("ui: embedded dist: %v", err))
	}
	s, err := NewFromFS(sub)
	if err != nil {
		panic(fmt.Sprintf("ui: embedded dist: %v", err))
	}
	return s
}

// RegisterRoutes registers the UI at GET / (the catch-all: more specific API
// patterns registered on the same mux take precedence).
func RegisterRoutes(mux *http.ServeMux) {
	mux.Handle("GET /", Handler())
}

// NewFromFS builds a Server from the bundle in fsys (index.html, app.js,
// app.css, ...). A file system without index.html serves the "not built" page.
func NewFromFS(fsys fs.FS) (*Server, error) {
	s := &Server{files: map[string]file{}, modified: time.Now()}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(path.Base(p), ".") {
			return nil
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = http.DetectContentType(body)
		}
		s.files[p] = file{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: ct}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("ui bundle: %w", err)
	}
	if f, ok := s.files["index.html"]; ok {
		s.index = &f
	}
	return s, nil
}

// Built reports whether the bundle has an index.html.
func (s *Server) Built() bool { return s.index != nil }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")

	p := path.Clean("/" + r.URL.Path)
	for _, pre := range apiPrefixes {
		if p == strings.TrimSuffix(pre, "/") || strings.HasPrefix(p, pre) {
			http.Error(w, "404 page not found: no API at "+p, http.StatusNotFound)
			return
		}
	}
	if s.index == nil {
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write([]byte(notBuiltPage))
		}
		return
	}
	name := strings.TrimPrefix(p, "/")
	if f, ok := s.files[name]; ok && name != "index.html" {
		if r.URL.Query().Get("v") != "" {
			// index.html references assets with ?v=<content hash>.
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		s.serveFile(w, r, f)
		return
	}
	if path.Ext(name) != "" && name != "index.html" {
		// A missing asset is a 404: answering it with HTML would hide the error.
		http.Error(w, "404 page not found: "+p, http.StatusNotFound)
		return
	}
	// Client-side route (/topology, /traces/abc, ...) or /index.html.
	h.Set("Cache-Control", "no-cache")
	s.serveFile(w, r, *s.index)
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, f file) {
	w.Header().Set("Content-Type", f.contentType)
	w.Header().Set("ETag", f.etag)
	http.ServeContent(w, r, "", s.modified, bytes.NewReader(f.body))
}
