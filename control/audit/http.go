package audit

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// Path is the audit API.
const Path = "/api/mesh/v1/audit"

// RegisterRoutes adds GET /api/mesh/v1/audit: ?who= ?action= ?target=
// ?since= ?until= (RFC 3339 or Unix seconds) ?before=SEQ ?limit=N.
func (l *Log) RegisterRoutes(mux *http.ServeMux) { RegisterRoutes(mux, l, l.logger) }

// RegisterRoutes adds GET /api/mesh/v1/audit over any log.
func RegisterRoutes(mux *http.ServeMux, q Querier, logger *slog.Logger) {
	mux.HandleFunc("GET "+Path, func(w http.ResponseWriter, r *http.Request) { serve(w, r, q, logger) })
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// ParseFilter reads a Filter from query parameters, naming a bad one.
func ParseFilter(q map[string][]string) (Filter, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	f := Filter{Who: get("who"), Action: get("action"), Target: get("target")}
	for _, p := range []struct {
		key string
		dst *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := get(p.key)
		if v == "" {
			continue
		}
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			*p.dst = t
		} else if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			*p.dst = time.Unix(n, 0)
		} else {
			return Filter{}, fmt.Errorf("%s=%q: want RFC 3339 time or Unix seconds", p.key, v)
		}
	}
	if v := get("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return Filter{}, fmt.Errorf("before=%q: want a sequence number", v)
		}
		f.Before = n
	}
	if v := get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return Filter{}, fmt.Errorf("limit=%q: want 1 to 1000", v)
		}
		f.Limit = n
	}
	return f, nil
}

func serve(w http.ResponseWriter, r *http.Request, q Querier, logger *slog.Logger) {
	f, err := ParseFilter(r.URL.Query())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	p, err := q.Query(r.Context(), f)
	if err != nil {
		logger.Error("audit query", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, p)
}
