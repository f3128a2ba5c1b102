package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/jsonlog"
)

// Shared is the audit log of a cluster of servers (--state-store etcd):
// every server appends to one journal (control/etcdstate.Journal) and
// every server's GET /api/mesh/v1/audit reads it, so each shows the same
// entries, numbered in the order they were committed. Retention (count
// and age) is the journal's.
type Shared struct {
	j      jsonlog.Journal
	logger *slog.Logger
	now    func() time.Time
	*metrics
}

// OpenShared audits into j.
func OpenShared(j jsonlog.Journal, reg prometheus.Registerer, logger *slog.Logger) (*Shared, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Shared{j: j, logger: logger, now: time.Now, metrics: m}, nil
}

// Record appends e durably (committed by the etcd cluster before it
// returns).
func (s *Shared) Record(ctx context.Context, e Entry) error {
	if err := prepare(ctx, &e); err != nil {
		return err
	}
	if e.Time.IsZero() {
		e.Time = s.now().UTC()
	}
	start := time.Now()
	seq, err := s.j.Append(context.WithoutCancel(ctx), func(seq uint64) ([]byte, error) {
		e.Seq = seq
		return json.Marshal(e)
	})
	if err != nil {
		s.failures.Inc()
		return fmt.Errorf("audit: %w", err)
	}
	e.Seq = seq
	s.appended(&e, time.Since(start))
	return nil
}

// Query reads matching entries, newest first.
func (s *Shared) Query(ctx context.Context, f Filter) (Page, error) {
	f = f.limited()
	page := Page{Entries: []Entry{}}
	var bad error
	err := s.j.Newest(ctx, f.Before, func(seq uint64, v []byte) bool {
		var e Entry
		if err := json.Unmarshal(v, &e); err != nil {
			bad = fmt.Errorf("audit entry %d is damaged: %w", seq, err)
			return false
		}
		if !f.match(&e) {
			return true
		}
		if len(page.Entries) == f.Limit {
			page.NextBefore = page.Entries[len(page.Entries)-1].Seq
			return false
		}
		page.Entries = append(page.Entries, e)
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return Page{}, fmt.Errorf("audit: %w", err)
	}
	return page, nil
}

// RegisterRoutes adds GET /api/mesh/v1/audit.
func (s *Shared) RegisterRoutes(mux *http.ServeMux) { RegisterRoutes(mux, s, s.logger) }

// Close does nothing: the journal's client belongs to the control plane.
func (s *Shared) Close() error { return nil }
