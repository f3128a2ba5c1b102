package guard

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/meshscope/meshscope/control/jsonlog"
	"github.com/meshscope/meshscope/control/store"
)

// Event kinds.
const (
	EventWouldAct    = "would-act"    // dry-run: the condition holds; what it would have done
	EventActed       = "acted"        // enforce: a new policy version was written
	EventWouldRevert = "would-revert" // dry-run: what a revert would have done
	EventReverted    = "reverted"     // the previous documents were restored
	EventSkipped     = "skipped"      // the condition holds but a limit or state forbids acting
	EventFailed      = "failed"       // writing the action or its revert failed
	EventPaused      = "paused"
	EventResumed     = "resumed"
	EventPromoted    = "promoted"
)

// Event is one decision of a guard: what /api/mesh/v1/events answers and
// what events.log holds, one JSON object a line.
type Event struct {
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Guard   string    `json:"guard"`
	Service string    `json:"service"`
	Kind    string    `json:"kind"`
	// Mode is the guard's mode at the time: dry-run or enforce.
	Mode string `json:"mode"`
	// Condition is the alert that made the guard act, with its value.
	Condition *Condition `json:"condition,omitempty"`
	// Summary says what was (or would have been) done, in words.
	Summary string `json:"summary"`
	// Changes is the policy diff made or that would be made.
	Changes []store.Change `json:"changes,omitempty"`
	// Version is the policy version written (enforce only).
	Version uint64 `json:"version,omitempty"`
	// Who did it: the guard, auto-revert, max_duration, or an operator.
	Who string `json:"who"`
}

// Condition is the firing alert a guard matched.
type Condition struct {
	Alert    string            `json:"alert"`
	Labels   map[string]string `json:"labels"`
	Value    float64           `json:"value"`
	ActiveAt time.Time         `json:"active_at"`
	// BurnRates are the SLO's current burn rates by window (SLO
	// conditions only), e.g. {"5s": 25.1, "4s": 30.2}.
	BurnRates map[string]float64 `json:"burn_rates,omitempty"`
}

// keepEvents is how many events are kept in memory for the API.
const keepEvents = 2000

// eventStore keeps the guards' events: events.log in the guard directory
// (eventLog), or a journal the servers of a cluster share (sharedEvents).
type eventStore interface {
	// append numbers e and writes it durably.
	append(e Event) (Event, error)
	// list returns the newest events first, filtered by guard and
	// service ("" = any), at most limit.
	list(ctx context.Context, guard, service string, limit int) ([]Event, error)
	close() error
}

// eventLog is the durable event log in a file.
type eventLog struct {
	mu     sync.Mutex
	f      *os.File
	seq    uint64
	recent []Event
}

func openEvents(dir string) (*eventLog, error) {
	path := filepath.Join(dir, "events.log")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening guard events: %w", err)
	}
	l := &eventLog{f: f}
	r := bufio.NewReader(f)
	var off int64
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			if len(line) > 0 { // a torn last write, never acknowledged
				if err := f.Truncate(off); err != nil {
					_ = f.Close()
					return nil, fmt.Errorf("truncating guard events: %w", err)
				}
			}
			break
		}
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("reading guard events: %w", err)
		}
		var e Event
		if err := json.Unmarshal(line, &e); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("guard events %s line %d is damaged: %w", path, n, err)
		}
		off += int64(len(line))
		l.seq = e.Seq
		l.keep(e)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("guard events: %w", err)
	}
	return l, nil
}

func (l *eventLog) keep(e Event) {
	l.recent = append(l.recent, e)
	if len(l.recent) > 2*keepEvents {
		l.recent = append([]Event(nil), l.recent[len(l.recent)-keepEvents:]...)
	}
}

// append writes e (numbering it) and fsyncs before returning.
func (l *eventLog) append(e Event) (Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e.Seq = l.seq + 1
	b, err := json.Marshal(e)
	if err != nil {
		return e, fmt.Errorf("encoding guard event: %w", err)
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		return e, fmt.Errorf("writing guard event: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return e, fmt.Errorf("syncing guard events: %w", err)
	}
	l.seq = e.Seq
	l.keep(e)
	return e, nil
}

// list returns the newest events first, filtered by guard and service
// ("" = any), at most limit.
func (l *eventLog) list(_ context.Context, guard, service string, limit int) ([]Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := []Event{}
	for i := len(l.recent) - 1; i >= 0 && len(out) < limit; i-- {
		e := l.recent[i]
		if e.matches(guard, service) {
			out = append(out, e)
		}
	}
	return out, nil
}

func (e *Event) matches(guard, service string) bool {
	return (guard == "" || e.Guard == guard) && (service == "" || e.Service == service)
}

// sharedEvents keeps the events in a journal every server of a cluster
// reads (--state-store etcd): /api/mesh/v1/events answers the same on
// each.
type sharedEvents struct{ j jsonlog.Journal }

func (s sharedEvents) append(e Event) (Event, error) {
	seq, err := s.j.Append(context.Background(), func(seq uint64) ([]byte, error) {
		e.Seq = seq
		return json.Marshal(e)
	})
	if err != nil {
		return e, fmt.Errorf("writing guard event: %w", err)
	}
	e.Seq = seq
	return e, nil
}

func (s sharedEvents) list(ctx context.Context, guard, service string, limit int) ([]Event, error) {
	out := []Event{}
	var bad error
	err := s.j.Newest(ctx, 0, func(seq uint64, v []byte) bool {
		var e Event
		if err := json.Unmarshal(v, &e); err != nil {
			bad = fmt.Errorf("guard event %d is damaged: %w", seq, err)
			return false
		}
		if e.matches(guard, service) {
			out = append(out, e)
		}
		return len(out) < limit
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, fmt.Errorf("reading guard events: %w", err)
	}
	return out, nil
}

func (sharedEvents) close() error { return nil }

func (l *eventLog) close() error { return l.f.Close() }

// writeFileSync writes data to path atomically: a temporary file, fsync,
// rename, fsync of the directory.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
