package guard

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEventLog: acknowledged events survive a reopen; a torn last line
// (a crash mid-write) is cut off; a damaged line is an error naming it.
func TestEventLog(t *testing.T) {
	dir := t.TempDir()
	l, err := openEvents(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{EventActed, EventReverted} {
		if _, err := l.append(Event{Guard: "g", Service: "s", Kind: k}); err != nil {
			t.Fatal(err)
		}
	}
	l.close()
	path := filepath.Join(dir, "events.log")
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"seq":3,"guard":"g","ki`)
	f.Close()
	l, err = openEvents(dir)
	if err != nil {
		t.Fatal(err)
	}
	evs, _ := l.list(context.Background(), "g", "", 10)
	if len(evs) != 2 || evs[0].Seq != 2 || evs[0].Kind != EventReverted || evs[1].Kind != EventActed {
		t.Fatalf("after reopen: %+v", evs)
	}
	e, err := l.append(Event{Guard: "h", Kind: EventPaused})
	if err != nil || e.Seq != 3 {
		t.Fatalf("append after a torn line: %+v %v", e, err)
	}
	got, _ := l.list(context.Background(), "", "", 10)
	onH, _ := l.list(context.Background(), "h", "", 10)
	if len(got) != 3 || len(onH) != 1 {
		t.Errorf("list: %+v", got)
	}
	l.close()
	os.WriteFile(path, []byte("{\"seq\":1}\nnot json\n"), 0o644)
	if _, err := openEvents(dir); err == nil || !strings.Contains(err.Error(), "line 2 is damaged") {
		t.Errorf("damaged log: %v", err)
	}
}
