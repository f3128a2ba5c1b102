package metricstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
)

// metadataFile holds the metric metadata next to the TSDB.
const metadataFile = "metadata.json"

// DefaultMaxMetadata bounds the metric families whose metadata is kept.
const DefaultMaxMetadata = 100_000

// metadataSaveInterval bounds how often a change is written to disk.
const metadataSaveInterval = 10 * time.Second

// metadataStore keeps the metadata (type, unit, help) that OTLP and remote
// write carry, per metric family, the way Prometheus keeps what its targets
// expose. It is saved to <dir>/metadata.json when it changes (at most every
// 10 s, and on Close) and loaded at open; senders repeat their metadata, so
// a change lost in a crash comes back with the next request.
type metadataStore struct {
	path string
	max  int

	mu        sync.Mutex
	families  map[string]metadata.Metadata
	dirty     bool
	lastSaved time.Time
}

func openMetadata(dir string, max int) (*metadataStore, error) {
	s := &metadataStore{path: filepath.Join(dir, metadataFile), max: max, families: map[string]metadata.Metadata{}}
	b, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("read metric metadata: %w", err)
	}
	if err := json.Unmarshal(b, &s.families); err != nil {
		return nil, fmt.Errorf("metric metadata in %s: %w", s.path, err)
	}
	return s, nil
}

// set records a family's metadata; empty metadata is ignored, and new
// families beyond the bound are dropped. The error is a failed save (the
// metadata stays in memory).
func (s *metadataStore) set(family string, md metadata.Metadata) error {
	if family == "" || md.IsEmpty() {
		return nil
	}
	if md.Type == "" {
		md.Type = model.MetricTypeUnknown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.families[family]
	if ok && old == md {
		return nil
	}
	if !ok && len(s.families) >= s.max {
		return nil
	}
	s.families[family] = md
	s.dirty = true
	if time.Since(s.lastSaved) >= metadataSaveInterval {
		return s.saveLocked()
	}
	return nil
}

func (s *metadataStore) all() map[string]metadata.Metadata {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.families)
}

// save writes the metadata if it changed since the last save.
func (s *metadataStore) save() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saveLocked()
}

func (s *metadataStore) saveLocked() error {
	if !s.dirty {
		return nil
	}
	s.lastSaved = time.Now()
	b, err := json.Marshal(s.families)
	if err != nil {
		return fmt.Errorf("encode metric metadata: %w", err)
	}
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write metric metadata: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("write metric metadata: %w", err)
	}
	s.dirty = false
	return nil
}

// familyOf is the metric family of a series name given its metadata: the
// classic histogram and summary series carry suffixes their family has not.
func familyOf(name string, t model.MetricType) string {
	switch t {
	case model.MetricTypeHistogram, model.MetricTypeGaugeHistogram, model.MetricTypeSummary:
		for _, suffix := range []string{"_bucket", "_count", "_sum", "_gcount", "_gsum"} {
			if base, ok := strings.CutSuffix(name, suffix); ok {
				return base
			}
		}
	}
	return name
}
