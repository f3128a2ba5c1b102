package tracestore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/meshscope/meshscope/collector/spans"
)

// ErrTraceNotFound is returned by TraceReader.Trace when no span of the trace
// is stored (the query API maps it to 404).
var ErrTraceNotFound = errors.New("trace not found")

// Writer stores a batch of spans. A nil return is the acknowledgement: the
// spans survive a crash of the process from then on.
type Writer interface {
	WriteSpans(ctx context.Context, batch []spans.Span) error
}

// TraceReader returns every stored span of one trace, in any order.
type TraceReader interface {
	Trace(ctx context.Context, id spans.TraceID) ([]spans.Span, error)
}

// Searcher finds traces that have at least one span matching every condition
// of the query, in the query's sort order (most recent first by default).
type Searcher interface {
	Search(ctx context.Context, q Query) ([]TraceRef, error)
}

// ServiceLister lists the services that have stored spans and the peer
// services that CLIENT spans call (spans.Span.PeerService), sorted.
type ServiceLister interface {
	Services(ctx context.Context) ([]string, error)
}

// OperationLister lists a service's operations, optionally of one span kind.
// A service without spans of its own (known only as the peer of CLIENT
// spans) lists the names of the CLIENT spans calling it, of kind client.
type OperationLister interface {
	Operations(ctx context.Context, q OperationQuery) ([]Operation, error)
}

// Reader is everything the query layer reads.
type Reader interface {
	TraceReader
	Searcher
	ServiceLister
	OperationLister
}

// Store is a complete backend. Close flushes and releases it; no method may
// be called after Close.
type Store interface {
	Writer
	Reader
	Close() error
}

// StatusFilter restricts a search by span status.
type StatusFilter uint8

// Status filters.
const (
	StatusAny   StatusFilter = iota
	StatusError              // at least one matching span has status Error
	StatusOK                 // matching span's status is not Error
)

// Query is a trace search. Zero fields do not restrict. All conditions must
// hold for one and the same span (as in Jaeger).
type Query struct {
	// Service matches a span of the service, or a CLIENT span whose peer
	// service (spans.Span.PeerService) it is: services without spans of
	// their own (unmeshed, virtual) are found through their callers.
	Service     string
	Operation   string
	Attrs       map[string]string // span or resource attribute key → value as text (Attr.String)
	MinDuration time.Duration
	MaxDuration time.Duration // 0 = no upper bound
	Status      StatusFilter
	Start, End  time.Time // span start time range; zero = unbounded
	Limit       int       // max traces; 0 = DefaultSearchLimit
	// Sort orders every matching trace in the time range; Limit applies
	// after it.
	Sort SortOrder
}

// SortOrder is the order of search results.
type SortOrder uint8

// Sort orders. Ties fall back to newest, then trace id.
const (
	// SortNewest: start of the trace's earliest matching span, descending.
	SortNewest SortOrder = iota
	// SortLongest: trace duration (earliest start to latest end of all the
	// trace's stored spans), descending.
	SortLongest
	// SortErrors: number of the trace's spans with status Error, descending.
	SortErrors
)

var sortNames = [...]string{SortNewest: "newest", SortLongest: "longest", SortErrors: "errors"}

// String returns the order's API name.
func (o SortOrder) String() string {
	if int(o) < len(sortNames) {
		return sortNames[o]
	}
	return fmt.Sprintf("SortOrder(%d)", o)
}

// ParseSortOrder reads an API name (newest, longest, errors; "" is newest).
func ParseSortOrder(s string) (SortOrder, error) {
	if s == "" {
		return SortNewest, nil
	}
	for i, n := range sortNames {
		if s == n {
			return SortOrder(i), nil
		}
	}
	return 0, fmt.Errorf("unknown sort order %q: want newest, longest or errors", s)
}

// ServiceInfo is a listed service and how it is known.
type ServiceInfo struct {
	Name string
	// Unmeshed: the service has no span of its own; it is known only as
	// the peer of CLIENT spans (an unmeshed or virtual service).
	Unmeshed bool
}

// DefaultSearchLimit is the number of traces Search returns when Query.Limit is 0.
const DefaultSearchLimit = 20

// TraceRef is one search hit: the trace and the start time of its earliest
// matching span (for ordering and for a time-bounded fetch).
type TraceRef struct {
	TraceID spans.TraceID
	Start   time.Time
}

// OperationQuery selects operations.
type OperationQuery struct {
	Service string
	Kind    *spans.Kind // nil = all kinds
}

// Operation is a span name and kind seen for a service.
type Operation struct {
	Name string
	Kind spans.Kind
}

// Damage is what a store found unreadable in its own files and skipped: the
// spans those bytes held are lost; everything else stays readable.
type Damage struct {
	Regions int      // damaged stretches (each held at least one record)
	Bytes   int64    // bytes skipped
	Where   []string // "file@offset+bytes", at most a few
}
