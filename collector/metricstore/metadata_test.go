package metricstore

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// Metadata passed with samples is recorded per family on commit (not on
// rollback), remote write 1.0's is set directly, and both survive a
// restart.
func TestMetadataRecordedAndKept(t *testing.T) {
	dir := t.TempDir()
	st, err := New(Config{Dir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	counter := metadata.Metadata{Type: model.MetricTypeCounter, Help: "Jobs finished."}
	hist := metadata.Metadata{Type: model.MetricTypeHistogram, Help: "Time in the queue.", Unit: "seconds"}

	app := st.AppenderV2(context.Background())
	if _, ok := app.(storage.ExemplarAppenderV2); !ok {
		t.Fatalf("%T does not append exemplars", app)
	}
	for _, s := range []struct {
		ls   labels.Labels
		opts storage.AppendV2Options
	}{
		// OTLP names the family; remote write 2.0 does not (the family of a
		// classic histogram's series is its name without the suffix).
		{labels.FromStrings("__name__", "jobs_done_total"), storage.AppendV2Options{Metadata: counter, MetricFamilyName: "jobs_done_total"}},
		{labels.FromStrings("__name__", "queue_seconds_bucket", "le", "1"), storage.AppendV2Options{Metadata: hist}},
		{labels.FromStrings("__name__", "queue_seconds_count"), storage.AppendV2Options{Metadata: hist}},
		{labels.FromStrings("__name__", "no_metadata"), storage.AppendV2Options{}},
	} {
		if _, err := app.Append(0, s.ls, 0, now, 1, nil, nil, s.opts); err != nil {
			t.Fatal(err)
		}
	}
	if got := st.MetricMetadata(); len(got) != 0 {
		t.Fatalf("metadata before commit: %v", got)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	app = st.AppenderV2(context.Background())
	app.Append(0, labels.FromStrings("__name__", "rolled_back"), 0, now, 1, nil, nil, storage.AppendV2Options{Metadata: counter, MetricFamilyName: "rolled_back"})
	app.Rollback()
	st.SetMetadata("rw1_family", metadata.Metadata{Type: model.MetricTypeGauge, Help: "From remote write 1.0."})

	want := map[string]metadata.Metadata{
		"jobs_done_total": counter,
		"queue_seconds":   hist,
		"rw1_family":      {Type: model.MetricTypeGauge, Help: "From remote write 1.0."},
	}
	check := func(when string, got map[string]metadata.Metadata) {
		t.Helper()
		if len(got) != len(want) {
			t.Errorf("%s: metadata %v, want %v", when, got, want)
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: metadata of %s = %+v, want %+v", when, k, got[k], w)
			}
		}
	}
	check("after commit", st.MetricMetadata())
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, err = New(Config{Dir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	check("after reopening", st.MetricMetadata())
}
