package control

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshscope/meshscope/control/policy"
	"github.com/meshscope/meshscope/control/store"
)

// filePrefix starts the source of every document loaded from a file.
const filePrefix = "file:"

// maxPolicyFile caps one policy file.
const maxPolicyFile = 32 << 20

// watcher keeps the store's file-owned documents equal to the YAML files
// of a directory (recursively; hidden entries skipped), polling mtimes and
// sizes and comparing content hashes.
type watcher struct {
	dir    string
	store  *store.Store
	logger *slog.Logger

	files map[string]*policyFile // by path relative to dir

	invalid prometheus.Gauge
	syncs   *prometheus.CounterVec
}

type policyFile struct {
	modTime time.Time
	size    int64
	hash    [32]byte
	docs    []policy.Document // last good content
	err     error             // current error, if the file is invalid
}

func newWatcher(dir string, st *store.Store, reg prometheus.Registerer, logger *slog.Logger) (*watcher, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("--policies: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("--policies %s: not a directory", dir)
	}
	w := &watcher{
		dir: dir, store: st, logger: logger, files: map[string]*policyFile{},
		invalid: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mesh_control_policy_files_invalid", Help: "Files of the --policies directory that do not load (their last good content stays applied).",
		}),
		syncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mesh_control_policy_dir_syncs_total", Help: "Syncs of the --policies directory into the store, by result.",
		}, []string{"result"}),
	}
	for _, c := range []prometheus.Collector{w.invalid, w.syncs} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return w, nil
}

func (w *watcher) run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := w.scan(false); err != nil {
				w.logger.Error("policy directory not applied", "dir", w.dir, "err", err)
			}
		}
	}
}

func isPolicyFile(name string) bool {
	return strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".json")
}

// scan reads changed files and syncs the store when anything changed. With
// strict (at start) an invalid file is an error; later it is logged and its
// last good content kept.
func (w *watcher) scan(strict bool) error {
	seen := map[string]bool{}
	changed := false
	var invalid []string
	err := filepath.WalkDir(w.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if path != w.dir && strings.HasPrefix(name, ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isPolicyFile(name) {
			return nil
		}
		rel, err := filepath.Rel(w.dir, path)
		if err != nil {
			return err
		}
		seen[rel] = true
		info, err := d.Info()
		if err != nil {
			return err
		}
		f := w.files[rel]
		if f != nil && f.modTime.Equal(info.ModTime()) && f.size == info.Size() {
			if f.err != nil {
				invalid = append(invalid, rel)
			}
			return nil
		}
		if info.Size() > maxPolicyFile {
			return fmt.Errorf("%s: larger than %d bytes", rel, maxPolicyFile)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if f == nil {
			f = &policyFile{}
			w.files[rel] = f
		}
		f.modTime, f.size = info.ModTime(), info.Size()
		h := sha256.Sum256(data)
		if h == f.hash && f.err == nil && f.docs != nil {
			return nil
		}
		f.hash = h
		docs, lerr := policy.Load(data)
		if lerr != nil {
			f.err = fmt.Errorf("%s: %w", rel, lerr)
			invalid = append(invalid, rel)
			w.logger.Error("policy file does not load; its last good content stays applied", "file", rel, "err", lerr)
			if strict {
				return f.err
			}
			return nil
		}
		f.err, f.docs = nil, docs
		if f.docs == nil {
			f.docs = []policy.Document{}
		}
		changed = true
		return nil
	})
	w.invalid.Set(float64(len(invalid)))
	if err != nil {
		return err
	}
	for rel := range w.files {
		if !seen[rel] {
			delete(w.files, rel)
			changed = true
		}
	}
	if !changed && !strict {
		return nil
	}
	return w.sync()
}

// sync applies the files' documents to the store in one version.
func (w *watcher) sync() error {
	names := make([]string, 0, len(w.files))
	for n := range w.files {
		names = append(names, n)
	}
	sort.Strings(names)
	var items []store.Item
	owner := map[policy.Key]string{}
	for _, n := range names {
		for _, d := range w.files[n].docs {
			if other, dup := owner[d.Key()]; dup {
				w.syncs.WithLabelValues("error").Inc()
				return fmt.Errorf("%s in %s is also in %s", d.Ref(), n, other)
			}
			owner[d.Key()] = n
			items = append(items, store.Item{Document: d, Source: filePrefix + n})
		}
	}
	res, err := w.store.Sync(filePrefix, items, store.ApplyOptions{Who: "policy directory " + w.dir})
	if err != nil {
		w.syncs.WithLabelValues("error").Inc()
		var ve *store.ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("policy directory: %w", err)
		}
		return err
	}
	w.syncs.WithLabelValues("ok").Inc()
	if res.Changed {
		w.logger.Info("policy directory applied", "dir", w.dir, "version", res.Version, "changes", len(res.Changes))
	}
	return nil
}
