package etcdstate

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/meshscope/meshscope/control/store"
)

// Log is an append-only log of JSON lines in etcd, one key per line
// (<prefix>/<20-digit line number>). It serves store.SharedLog: Append
// writes the next line only if no one wrote it yet (a create-only
// transaction), answering store.ErrStale otherwise; a watch on the prefix
// tells when others appended.
type Log struct {
	cli    *clientv3.Client
	prefix string // ends in "/"

	mu   sync.Mutex
	seen uint64 // lines read so far: the next Append writes seen+1

	changed chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

var _ store.SharedLog = (*Log)(nil)

// OpenLog watches the log below prefix until Close.
func OpenLog(cli *clientv3.Client, prefix string) *Log {
	ctx, cancel := context.WithCancel(context.Background())
	l := &Log{cli: cli, prefix: prefix + "/", changed: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), l.prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	go l.watch(ctx, wch)
	return l
}

// watch signals Changed on every event until ctx ends; a broken watch is
// opened again (its gap is covered: a signal makes the reader catch up
// by line number).
func (l *Log) watch(ctx context.Context, wch clientv3.WatchChan) {
	defer close(l.done)
	defer close(l.changed)
	for {
		for range wch {
			l.signal()
		}
		if ctx.Err() != nil || l.cli.Ctx().Err() != nil {
			return // stopped, or the client is closed
		}
		l.signal()
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond): // no busy loop while etcd has no leader
		}
		wch = l.cli.Watch(clientv3.WithRequireLeader(ctx), l.prefix, clientv3.WithPrefix())
	}
}

func (l *Log) signal() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *Log) key(n uint64) string { return fmt.Sprintf("%s%020d", l.prefix, n) }

// Append writes v as the next line, or answers store.ErrStale when that
// line exists.
func (l *Log) Append(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding a line of %s: %w", l.prefix, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.key(l.seen + 1)
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	resp, err := l.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, string(b))).Commit()
	if err != nil {
		return fmt.Errorf("etcd put %s: %w", k, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("etcd %s: %w", k, store.ErrStale)
	}
	l.seen++
	return nil
}

// Since returns the lines after the first n.
func (l *Log) Since(ctx context.Context, n uint64) ([][]byte, error) {
	resp, err := l.cli.Get(ctx, l.key(n+1), clientv3.WithRange(clientv3.GetPrefixRangeEnd(l.prefix)),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("etcd get %s: %w", l.prefix, err)
	}
	lines := make([][]byte, 0, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		want := n + uint64(i) + 1
		got, err := strconv.ParseUint(string(kv.Key[len(l.prefix):]), 10, 64)
		if err != nil || got != want {
			return nil, fmt.Errorf("etcd %s: key %s where line %d belongs", l.prefix, kv.Key, want)
		}
		lines = append(lines, kv.Value)
	}
	l.mu.Lock()
	l.seen = n + uint64(len(lines))
	l.mu.Unlock()
	return lines, nil
}

// Changed receives a value after lines were appended; Close closes it.
func (l *Log) Changed() <-chan struct{} { return l.changed }

// Close stops the watch (the client stays open: its owner closes it).
func (l *Log) Close() error {
	l.cancel()
	<-l.done
	return nil
}
