// Package route is the endpoint list each query sub-API (Prometheus, Jaeger,
// native) hands to the query package, which instruments and registers them.
package route

import "net/http"

// Route is one method+path pattern (Go 1.22 ServeMux syntax) and its handler.
type Route struct {
	Pattern string
	Name    string // short endpoint name, used as a bounded metric label
	Handler http.Handler
}

// Register adds every route to mux as it is.
func Register(mux *http.ServeMux, routes []Route) {
	for _, r := range routes {
		mux.Handle(r.Pattern, r.Handler)
	}
}
