package etcdstate_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/audit"
	"github.com/meshscope/meshscope/control/etcdstate"
)

// TestJournal: two servers append at once and every record gets its own
// number, none lost; reads go newest first and page; retention keeps the
// newest Keep records.
func TestJournal(t *testing.T) {
	ep := startEtcd(t)
	open := func(keep int) *etcdstate.Journal {
		j, err := etcdstate.NewJournal(dial(t, ep), "/t/journals/x", etcdstate.JournalOptions{Keep: keep})
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	a, b := open(1000), open(1000)
	if _, err := etcdstate.NewJournal(nil, "/t/j", etcdstate.JournalOptions{}); err == nil {
		t.Error("a journal keeping nothing was accepted")
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	seqs := make([]uint64, 40)
	errs := make([]error, 40)
	for i := range 40 {
		j := a
		if i%2 == 1 {
			j = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			seqs[i], errs[i] = j.Append(ctx, func(seq uint64) ([]byte, error) {
				return fmt.Appendf(nil, `{"seq":%d,"writer":%d}`, seq, i), nil
			})
		}()
	}
	wg.Wait()
	seen := map[uint64]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		if seen[seqs[i]] {
			t.Fatalf("number %d written twice", seqs[i])
		}
		seen[seqs[i]] = true
	}
	var got []uint64
	if err := b.Newest(ctx, 0, func(seq uint64, v []byte) bool {
		if want := fmt.Sprintf(`{"seq":%d,`, seq); string(v[:len(want)]) != want {
			t.Errorf("record %d holds %s", seq, v)
		}
		got = append(got, seq)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 40 || got[0] != 40 || got[39] != 1 {
		t.Fatalf("read %d records, newest %v: want 40 → 1", len(got), got)
	}
	got = got[:0]
	_ = a.Newest(ctx, 11, func(seq uint64, _ []byte) bool { got = append(got, seq); return len(got) < 3 })
	if fmt.Sprint(got) != "[10 9 8]" {
		t.Errorf("a page before 11: %v, want [10 9 8]", got)
	}

	// Keep 10: after the 64th record (a retention pass) only 55..64 stay.
	small := open(10)
	for range 24 {
		if _, err := small.Append(ctx, func(uint64) ([]byte, error) { return []byte(`{}`), nil }); err != nil {
			t.Fatal(err)
		}
	}
	got = got[:0]
	_ = small.Newest(ctx, 0, func(seq uint64, _ []byte) bool { got = append(got, seq); return true })
	if len(got) != 10 || got[0] != 64 || got[9] != 55 {
		t.Errorf("kept %v, want 64 → 55", got)
	}
}

// TestJournalAge: records older than MaxAge go at the retention pass; the
// newest stays.
func TestJournalAge(t *testing.T) {
	ep := startEtcd(t)
	j, err := etcdstate.NewJournal(dial(t, ep), "/t/journals/age", etcdstate.JournalOptions{Keep: 1000, MaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := 1; i <= 64; i++ {
		at := time.Now().Add(-2 * time.Hour)
		if i > 50 {
			at = time.Now()
		}
		if _, err := j.Append(ctx, func(uint64) ([]byte, error) {
			return fmt.Appendf(nil, `{"time":%q}`, at.UTC().Format(time.RFC3339Nano)), nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint64
	_ = j.Newest(ctx, 0, func(seq uint64, _ []byte) bool { got = append(got, seq); return true })
	if len(got) != 14 || got[13] != 51 {
		t.Errorf("kept %v, want 64 → 51 (the records of the last hour)", got)
	}
}

// TestSharedAudit: what one server audits, another's audit API shows, in
// commit order, paged.
func TestSharedAudit(t *testing.T) {
	ep := startEtcd(t)
	open := func() *audit.Shared {
		j, err := etcdstate.NewJournal(dial(t, ep), "/t/journals/audit", etcdstate.JournalOptions{Keep: 100})
		if err != nil {
			t.Fatal(err)
		}
		s, err := audit.OpenShared(j, prometheus.NewRegistry(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := open(), open()
	ctx := context.Background()
	for i, s := range []*audit.Shared{a, b, a, b, a} {
		if err := s.Record(ctx, audit.Entry{Action: "apply", Who: fmt.Sprintf("w%d", i), Version: uint64(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Record(ctx, audit.Entry{}); err == nil {
		t.Error("an entry without an action was accepted")
	}
	p, err := b.Query(ctx, audit.Filter{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 2 || p.Entries[0].Seq != 5 || p.Entries[0].Who != "w4" || p.Entries[1].Seq != 4 || p.NextBefore != 4 {
		t.Fatalf("first page: %+v", p)
	}
	p, err = a.Query(ctx, audit.Filter{Before: p.NextBefore, Who: "w0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 1 || p.Entries[0].Seq != 1 || p.Entries[0].Outcome != "ok" || p.Entries[0].Time.IsZero() || p.NextBefore != 0 {
		t.Fatalf("w0 before 4: %+v", p)
	}
}
