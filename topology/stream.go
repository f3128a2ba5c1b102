package topology

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// streamKey is what a stream client subscribes to.
type streamKey struct {
	window time.Duration
	view   string
}

// streamClient is one subscriber. The hub only ever does non-blocking
// sends on send; a client whose queue is full is dropped (done closed).
type streamClient struct {
	key          streamKey
	send         chan []byte
	done         chan struct{}
	snapshotSent bool
	slow         atomic.Bool // dropped for a full queue
	closeOnce    sync.Once
}

func (c *streamClient) close() { c.closeOnce.Do(func() { close(c.done) }) }

type streamState struct {
	seq     uint64
	last    *Graph
	clients map[*streamClient]struct{}
}

// hub fans graphs out to stream clients as a snapshot then diffs.
type hub struct {
	bufSize int
	clients prometheus.Gauge
	dropped prometheus.Counter

	mu      sync.Mutex
	streams map[streamKey]*streamState
	closed  bool
}

func newHub(bufSize int, clients prometheus.Gauge, dropped prometheus.Counter) *hub {
	return &hub{bufSize: bufSize, clients: clients, dropped: dropped, streams: map[streamKey]*streamState{}}
}

// subscribe adds a client. If a graph for key exists, its snapshot is the
// first queued frame; otherwise the snapshot follows the first publish.
func (h *hub) subscribe(key streamKey) *streamClient {
	c := &streamClient{key: key, send: make(chan []byte, h.bufSize), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		c.close()
		return c
	}
	st := h.streams[key]
	if st == nil {
		st = &streamState{clients: map[*streamClient]struct{}{}}
		h.streams[key] = st
	}
	if st.last != nil {
		if b, err := json.Marshal(StreamMessage{Type: "snapshot", Seq: st.seq, Graph: st.last, At: st.last.At}); err == nil {
			c.send <- b
			c.snapshotSent = true
		}
	}
	st.clients[c] = struct{}{}
	h.clients.Inc()
	return c
}

func (h *hub) unsubscribe(c *streamClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(c)
}

func (h *hub) removeLocked(c *streamClient) {
	st := h.streams[c.key]
	if st == nil {
		return
	}
	if _, ok := st.clients[c]; !ok {
		return
	}
	delete(st.clients, c)
	h.clients.Dec()
	c.close()
	if len(st.clients) == 0 {
		delete(h.streams, c.key) // nobody watches: stop building it
	}
}

// keys lists the subscribed streams.
func (h *hub) keys() []streamKey {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]streamKey, 0, len(h.streams))
	for k := range h.streams {
		out = append(out, k)
	}
	return out
}

// publish hands the newest graph of key to its clients: a snapshot to new
// ones, the diff against the previous graph to the others (only when
// something changed). It never blocks: a client with a full queue is
// dropped.
func (h *hub) publish(key streamKey, g *Graph) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.streams[key]
	if st == nil {
		return
	}
	var diffFrame []byte
	if st.last != nil {
		m, changed := Diff(st.last, g)
		if changed {
			st.seq++
			m.Seq = st.seq
			diffFrame, _ = json.Marshal(m)
		}
	} else {
		st.seq = 1
	}
	st.last = g
	var snapFrame []byte
	for c := range st.clients {
		var frame []byte
		if !c.snapshotSent {
			if snapFrame == nil {
				snapFrame, _ = json.Marshal(StreamMessage{Type: "snapshot", Seq: st.seq, Graph: g, At: g.At})
			}
			frame = snapFrame
		} else if diffFrame != nil {
			frame = diffFrame
		} else {
			continue
		}
		select {
		case c.send <- frame:
			c.snapshotSent = true
		default:
			h.dropped.Inc()
			c.slow.Store(true)
			h.removeLocked(c)
		}
	}
}

// closeAll disconnects every client and refuses new ones.
func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, st := range h.streams {
		for c := range st.clients {
			h.removeLocked(c)
		}
	}
}
