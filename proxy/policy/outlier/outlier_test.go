package outlier

import (
	"testing"
	"time"
)

func TestDetector(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type step struct {
		at     time.Duration
		addr   string
		failed bool
	}
	fails := func(addr string, at time.Duration, n int) []step {
		var s []step
		for range n {
			s = append(s, step{at, addr, true})
		}
		return s
	}
	tests := []struct {
		name    string
		hosts   []string
		steps   []step
		check   time.Duration
		ejected []string
	}{
		{"four failures stay", []string{"a", "b"}, fails("a", 0, 4), time.Second, nil},
		{"five failures eject", []string{"a", "b"}, fails("a", 0, 5), time.Second, []string{"a"}},
		{"success resets the run", []string{"a", "b"}, append(append(fails("a", 0, 4), step{0, "a", false}), fails("a", 0, 4)...), time.Second, nil},
		{"ejection ends after base time", []string{"a", "b"}, fails("a", 0, 5), 31 * time.Second, nil},
		{"second ejection lasts twice as long", []string{"a", "b"}, append(fails("a", 0, 5), fails("a", 31*time.Second, 5)...), 31*time.Second + 59*time.Second, []string{"a"}},
		{"at least one even below 10 percent", []string{"a", "b", "c"}, append(fails("a", 0, 5), fails("b", 0, 5)...), time.Second, []string{"a"}},
		{"unknown endpoint ignored", []string{"a"}, fails("z", 0, 10), time.Second, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := New(Defaults)
			d.SetEndpoints(tc.hosts)
			for _, s := range tc.steps {
				d.Observe(s.addr, s.failed, t0.Add(s.at))
			}
			var got []string
			for _, e := range d.Ejected(t0.Add(tc.check)) {
				got = append(got, e.Addr)
			}
			if len(got) != len(tc.ejected) {
				t.Fatalf("ejected %v, want %v", got, tc.ejected)
			}
			for i := range got {
				if got[i] != tc.ejected[i] || !d.Excluded(got[i], t0.Add(tc.check)) {
					t.Fatalf("ejected %v, want %v", got, tc.ejected)
				}
			}
		})
	}
}

func TestMultiplierDecays(t *testing.T) {
	t0 := time.Unix(1000, 0)
	d := New(Defaults)
	d.SetEndpoints([]string{"a", "b"})
	for range 5 {
		d.Observe("a", true, t0)
	}
	// Back at 30 s, healthy for 100 s: the multiplier decays to 0, so the
	// next ejection is the base time again.
	d.Observe("a", false, t0.Add(130*time.Second))
	for range 5 {
		d.Observe("a", true, t0.Add(130*time.Second))
	}
	e := d.Ejected(t0.Add(131 * time.Second))
	if len(e) != 1 || e[0].Until != t0.Add(160*time.Second) {
		t.Fatalf("ejections %+v, want one until +160s", e)
	}
}
