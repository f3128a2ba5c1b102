package topology

import (
	"context"
	"testing"
	"time"
)

// liveAndReplay builds the graph of (sec, window) as the live loop does
// and as a replay does, and reports which one read the memory.
func liveAndReplay(t *testing.T, top *Topology, sec int, window time.Duration, view string) (live, replay string, liveMem, replayMem bool) {
	t.Helper()
	ctx := context.Background()
	la, err := top.assemble(ctx, at(sec), window, true)
	if err != nil {
		t.Fatal(err)
	}
	ra, err := top.assemble(ctx, at(sec), window, false)
	if err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, la.graph(view, top.th)), mustJSON(t, ra.graph(view, top.th)), la.raw.memory, ra.raw.memory
}

// The live graph summed from memory is identical (bit for bit) to the
// replay of the same window read from the store, while traffic changes,
// in both views; windows the memory does not hold are read from the store.
func TestLiveMemoryEqualsReplay(t *testing.T) {
	top, db, _ := newTestTopology(t, Config{})
	app := hooked(top, db, 0)
	if err := top.AggregateEdges(context.Background(), at(0)); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 130; i++ {
		calls := shopCalls
		switch {
		case i > 70 && i <= 100:
			calls = shopCalls[:4] // edges stop, then come back
		case i > 100 && i%3 == 0:
			calls = shopCalls[1:]
		}
		aggregated(t, top, app, i, i, calls)
		if i < 60 || i%5 != 0 {
			continue
		}
		for _, view := range []string{ViewService, ViewVersion} {
			live, replay, liveMem, replayMem := liveAndReplay(t, top, i, time.Minute, view)
			if !liveMem || replayMem {
				t.Fatalf("at %ds: memory used live %v, replay %v; want true, false", i, liveMem, replayMem)
			}
			if live != replay {
				t.Fatalf("at %ds, %s view: live differs from replay\nlive   %s\nreplay %s", i, view, live, replay)
			}
		}
	}
	// A shorter window is summed from memory too; a longer one is not held.
	for _, c := range []struct {
		window time.Duration
		mem    bool
	}{{30 * time.Second, true}, {2 * time.Minute, false}} {
		live, replay, liveMem, _ := liveAndReplay(t, top, 130, c.window, ViewService)
		if liveMem != c.mem {
			t.Errorf("window %s: memory used = %v, want %v", c.window, liveMem, c.mem)
		}
		if live != replay {
			t.Errorf("window %s: live differs from replay\nlive   %s\nreplay %s", c.window, live, replay)
		}
	}
	// The memory holds one window per edge.
	top.agg.mu.Lock()
	for _, e := range top.agg.order {
		if len(e.mem) > 60 {
			t.Errorf("edge %s holds %d samples for a 60 s window", e.lsets[0], len(e.mem))
		}
	}
	top.agg.mu.Unlock()
}

// A restarted server refills the memory from the store's aggregates of the
// window, so its first live graphs (whose windows reach into the previous
// run) are summed from memory and equal the replay.
func TestLiveMemoryRestart(t *testing.T) {
	db := openDB(t)
	first, err := New(Config{}, newEngine(), db, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	app := hooked(first, db, 0)
	if err := first.AggregateEdges(context.Background(), at(0)); err != nil {
		t.Fatal(err)
	}
	aggregated(t, first, app, 1, 70, shopCalls)
	appendGolden(t, app, 71, 72, shopCalls[2:], shopProxies) // after the last step

	second, err := New(Config{}, newEngine(), db, db, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	app = hooked(second, db, 72)
	for i := 73; i <= 100; i++ {
		aggregated(t, second, app, i, i, shopCalls)
		for _, view := range []string{ViewService, ViewVersion} {
			live, replay, liveMem, _ := liveAndReplay(t, second, i, time.Minute, view)
			if !liveMem {
				t.Fatalf("at %ds: the restarted live build did not use the memory", i)
			}
			if live != replay {
				t.Fatalf("at %ds, %s view: live differs from replay\nlive   %s\nreplay %s", i, view, live, replay)
			}
		}
	}
}

// With live_memory off the live graph reads the store, with the same result.
func TestLiveMemoryOff(t *testing.T) {
	off := false
	top, db, _ := newTestTopology(t, Config{LiveMemory: &off})
	app := hooked(top, db, 0)
	if err := top.AggregateEdges(context.Background(), at(0)); err != nil {
		t.Fatal(err)
	}
	aggregated(t, top, app, 1, 61, shopCalls)
	live, replay, liveMem, _ := liveAndReplay(t, top, 61, time.Minute, ViewService)
	if liveMem {
		t.Error("memory used with live_memory off")
	}
	if live != replay {
		t.Errorf("live differs from replay\nlive   %s\nreplay %s", live, replay)
	}
}
