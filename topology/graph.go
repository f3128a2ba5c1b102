package topology

import "time"

// This file is the wire contract of GET /api/mesh/graph and of the stream
// GET /api/mesh/graph/stream. The UI and the CLI decode these shapes; change
// them only by adding fields. Latencies are milliseconds, rates per second,
// fractions 0..1.

// Node kinds.
const (
	KindService  = "service"  // meshed: has a proxy reporting
	KindUnmeshed = "unmeshed" // seen only from a peer (no proxy of its own)
	KindExternal = "external" // outside the mesh (forward-proxy unknown host, peer address)
	KindUser     = "user"     // callers of root requests with no known caller
	KindDatabase = "database" // client spans with db.* attributes
)

// Health values.
const (
	HealthHealthy  = "healthy"
	HealthDegraded = "degraded"
	HealthFailing  = "failing"
	HealthNoData   = "no_data"
)

// Proxy modes as reported on a node.
const (
	ModeObserve = "observe"
	ModeEnforce = "enforce"
	ModeNone    = "none"
)

// Edge tls states: how the requests a proxy reported on the edge ran.
const (
	TLSMutual    = "mtls"      // all over mesh mTLS
	TLSPartial   = "partial"   // some over mTLS, some plaintext
	TLSPlaintext = "plaintext" // none over mTLS
)

// Graph is the service graph over one window ending at At.
type Graph struct {
	At       time.Time `json:"at"`
	Window   string    `json:"window"` // e.g. "1m"
	View     string    `json:"view"`   // "service" or "version"
	Nodes    []Node    `json:"nodes"`
	Edges    []Edge    `json:"edges"`
	Coverage Coverage  `json:"coverage"`
	// CoveredSeconds is how many seconds of the window have data: the
	// window's length when the data reaches back past its start.
	CoveredSeconds float64 `json:"covered_seconds"`
}

// Stats are the golden signals of a node (requests it served) or an edge.
type Stats struct {
	RPS         float64 `json:"rps"`
	ErrorRate   float64 `json:"error_rate"` // failures / requests, 0..1
	P50Ms       float64 `json:"p50_ms"`
	P95Ms       float64 `json:"p95_ms"`
	P99Ms       float64 `json:"p99_ms"`
	BytesPerSec float64 `json:"bytes_per_sec"` // request + response bytes
}

// Node is a service (or, in the version view, one version of a service).
type Node struct {
	ID        string   `json:"id"` // service name; "service@version" in the version view
	Service   string   `json:"service"`
	Version   string   `json:"version,omitempty"` // version view only
	Kind      string   `json:"kind"`
	Mode      string   `json:"mode"`
	Health    string   `json:"health"`
	Group     string   `json:"group,omitempty"` // namespace-like group (service.namespace)
	Versions  []string `json:"versions,omitempty"`
	Protocols []string `json:"protocols,omitempty"`
	Stats
}

// Edge is traffic from Source to Target (node ids).
type Edge struct {
	ID        string   `json:"id"` // Source + "->" + Target
	Source    string   `json:"source"`
	Target    string   `json:"target"`
	Protocols []string `json:"protocols,omitempty"`
	Health    string   `json:"health"`
	SeenBy    string   `json:"seen_by"` // "source", "destination", "both" (proxies) or "spans"
	// TLS is "mtls", "partial" or "plaintext" ("" when no proxy reported
	// the edge: span-derived edges); MTLSFraction the share (0..1) of its
	// requests over mesh mTLS.
	TLS          string  `json:"tls,omitempty"`
	MTLSFraction float64 `json:"mtls_fraction"`
	Stats
}

// Coverage says how much of the mesh passes through proxies.
type Coverage struct {
	Services         int      `json:"services"`          // nodes of kind service or unmeshed
	MeshedServices   int      `json:"meshed_services"`   // of those, with a proxy
	ServiceFraction  float64  `json:"service_fraction"`  // meshed / services
	RequestFraction  float64  `json:"request_fraction"`  // requests through ≥1 proxy / all requests seen
	ObserveServices  int      `json:"observe_services"`  // meshed services in observe mode
	EnforceServices  int      `json:"enforce_services"`  // meshed services in enforce mode
	Edges            int      `json:"edges"`             // all edges
	EdgesBothSides   int      `json:"edges_both_sides"`  // edges reported by both proxies
	UnmeshedServices []string `json:"unmeshed_services"` // services that still need a proxy
	EdgesMTLS        int      `json:"edges_mtls"`        // edges whose proxy-reported requests all ran over mTLS
	EdgesPlaintext   int      `json:"edges_plaintext"`   // edges with requests still in plaintext (tls plaintext or partial)
}

// StreamMessage is one WebSocket text frame of /api/mesh/graph/stream. The
// first frame is a snapshot (Graph set); later frames are diffs against the
// previous frame (Graph nil), sent at most once a second and only when
// something changed.
type StreamMessage struct {
	Type          string    `json:"type"` // "snapshot" or "diff"
	Seq           uint64    `json:"seq"`  // increases by one per frame
	Graph         *Graph    `json:"graph,omitempty"`
	At            time.Time `json:"at,omitzero"`
	UpsertedNodes []Node    `json:"upserted_nodes,omitempty"`
	RemovedNodes  []string  `json:"removed_nodes,omitempty"`
	UpsertedEdges []Edge    `json:"upserted_edges,omitempty"`
	RemovedEdges  []string  `json:"removed_edges,omitempty"`
	Coverage      *Coverage `json:"coverage,omitempty"`
	// CoveredSeconds is the graph's new covered_seconds when it changed.
	CoveredSeconds *float64 `json:"covered_seconds,omitempty"`
}
