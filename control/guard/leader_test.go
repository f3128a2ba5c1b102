package guard

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/store"
)

// memState is a StateStore two controllers share, as the servers of a
// cluster share etcd.
type memState struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memState) Load() (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range s.m {
		out[k] = v
	}
	return out, nil
}

func (s *memState) Save(name string, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[name] = append([]byte(nil), b...)
	return nil
}

type leadFlag struct{ v atomic.Bool }

func (l *leadFlag) IsLeader() bool { return l.v.Load() }

// TestLeaderTakesGuardsOver: the leader acts; a follower neither acts nor
// takes operations; when the follower becomes leader it holds the last
// leader's action and revert point: it does not act again and reverts to
// the route from before the action.
func TestLeaderTakesGuardsOver(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, strings.Replace(fixtureDocs, "%s", "enforce", 1))
	orig := f.route(t)
	shared := &memState{m: map[string][]byte{}}
	var clockMu sync.Mutex
	now := f.now
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	open := func(lead *leadFlag) *Controller {
		c, err := New(Options{Dir: filepath.Join(t.TempDir(), "guards"), EvalInterval: time.Second, Tick: 5 * time.Millisecond, Leader: lead, State: shared},
			f.st, f.alerts, nil, nil, nil, nil, prometheus.NewRegistry(), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.now = clock
		return c
	}
	var leadA, leadB leadFlag
	leadA.v.Store(true)
	a, b := open(&leadA), open(&leadB)
	f.alerts.set(t, "inv-avail", true)
	if err := a.loadState(); err != nil {
		t.Fatal(err)
	}
	a.Evaluate(ctx)
	if got := f.route(t); got != "v1:100 mode=enforce" {
		t.Fatalf("the leader did not act: %s", got)
	}
	guardWrites := func() int {
		n := 0
		for _, e := range f.st.History(0, 0) {
			if e.Action == store.ActionGuard {
				n++
			}
		}
		return n
	}
	if n := guardWrites(); n != 1 {
		t.Fatalf("%d guard writes after the action, want 1", n)
	}

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = b.Run(rctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	time.Sleep(50 * time.Millisecond)
	if _, err := b.Operate(ctx, "g", OpPause, "op"); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Operate on a follower: %v, want ErrNotLeader", err)
	}

	// Leadership moves to b while the condition still holds: no second
	// action.
	leadA.v.Store(false)
	leadB.v.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for !b.Firing("inv") {
		if time.Now().After(deadline) {
			t.Fatal("the new leader did not take the active action over")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // several evaluations
	if n := guardWrites(); n != 1 {
		t.Fatalf("%d guard writes after the take-over, want 1", n)
	}

	// The condition clears: b reverts to the route from before a's action.
	f.alerts.set(t, "inv-avail", false)
	b.Trigger()
	time.Sleep(50 * time.Millisecond)
	clockMu.Lock()
	now = now.Add(11 * time.Second) // past revert_after
	clockMu.Unlock()
	for f.route(t) != orig {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("the new leader did not revert: %s, want %s", f.route(t), orig)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := guardWrites(); n != 2 {
		t.Fatalf("%d guard writes after the revert, want 2 (action, revert)", n)
	}
}

// TestTakeOverSettlesPendingAction: a leader that died between saving an
// action (with its revert point) and writing it, or between writing it
// and recording it, leaves a pending action. Its successor adopts it when
// the policies hold it (recording the event the leader did not), and
// drops it and plans afresh when they do not: the action happens once.
func TestTakeOverSettlesPendingAction(t *testing.T) {
	for _, tc := range []struct {
		name        string
		written     bool
		guardWrites int // in the whole history
	}{
		{"written before the crash", true, 1},
		{"not written before the crash", false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, strings.Replace(fixtureDocs, "%s", "enforce", 1))
			orig := f.route(t)
			shared := &memState{m: map[string][]byte{}}
			open := func(lead *leadFlag) *Controller {
				c, err := New(Options{Dir: filepath.Join(t.TempDir(), "guards"), EvalInterval: time.Second, Tick: 5 * time.Millisecond, Leader: lead, State: shared},
					f.st, f.alerts, nil, nil, nil, nil, prometheus.NewRegistry(), nil)
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			var leadA, leadB leadFlag
			leadA.v.Store(true)
			a := open(&leadA)
			f.alerts.set(t, "inv-avail", true)
			a.Evaluate(ctx)
			if got := f.route(t); got != "v1:100 mode=enforce" {
				t.Fatalf("the leader did not act: %s", got)
			}
			// The crash: the saved state still says pending.
			raw, _ := shared.Load()
			var st map[string]*guardState
			if err := json.Unmarshal(raw[stateName], &st); err != nil || st["g"].Action == nil {
				t.Fatalf("saved state: %s (%v)", raw[stateName], err)
			}
			st["g"].Action.Pending, st["g"].Action.Version = true, 0
			b, _ := json.Marshal(st)
			_ = shared.Save(stateName, b)
			if !tc.written {
				if _, err := f.st.Rollback(f.st.Version()-1, store.ApplyOptions{Who: "test"}); err != nil || f.route(t) != orig {
					t.Fatalf("undoing the write: %v, route %s", err, f.route(t))
				}
			}

			leadA.v.Store(false)
			leadB.v.Store(true)
			next := open(&leadB)
			rctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { _ = next.Run(rctx); close(done) }()
			deadline := time.Now().Add(5 * time.Second)
			for !next.Firing("inv") {
				if time.Now().After(deadline) {
					cancel()
					<-done
					t.Fatal("the new leader holds no action")
				}
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(50 * time.Millisecond) // several evaluations
			cancel()
			<-done
			n := 0
			for _, e := range f.st.History(0, 0) {
				if e.Action == store.ActionGuard {
					n++
				}
			}
			if n != tc.guardWrites {
				t.Errorf("%d guard writes, want %d", n, tc.guardWrites)
			}
			evs, _ := next.events.list(ctx, "g", "", 10)
			if len(evs) != 1 || evs[0].Kind != EventActed {
				t.Fatalf("the new leader's events: %+v, want one acted", evs)
			}
			if adopted := strings.Contains(evs[0].Summary, "previous leader"); adopted != tc.written {
				t.Errorf("event %q: adopted %v, want %v", evs[0].Summary, adopted, tc.written)
			}
			next.mu.Lock()
			act := next.state["g"].Action
			next.mu.Unlock()
			if act == nil || act.Pending || act.Writes[0].Before == nil {
				t.Errorf("the new leader's action: %+v, want settled with its revert point", act)
			}
		})
	}
}
