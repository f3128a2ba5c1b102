package etcdstate

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Journal is an append-only log of JSON records in etcd that every server
// of a cluster appends to and reads: one key per record,
// <prefix>/<20-digit sequence number>, so the keys sort in the order the
// records were committed. Append writes the next number with a
// create-only transaction (two servers never write the same number; the
// loser reads the newest number and tries the next). Retention keeps at
// most Keep records and drops those older than MaxAge (by the record's
// "time" field), pruned by the appending server every pruneEvery records.
// The audit log and the guard events use it with --state-store etcd.
type Journal struct {
	cli    *clientv3.Client
	prefix string // ends in "/"
	opts   JournalOptions
	now    func() time.Time

	mu   sync.Mutex
	next uint64 // the number the next Append tries first (0: unknown)
}

// JournalOptions bound a Journal.
type JournalOptions struct {
	// Keep is how many records are kept at most (the newest). Required.
	Keep int
	// MaxAge drops records older than it (0: no age limit).
	MaxAge time.Duration
}

// pruneEvery is how many appends pass between two retention passes.
const pruneEvery = 64

// NewJournal keeps records below prefix.
func NewJournal(cli *clientv3.Client, prefix string, opts JournalOptions) (*Journal, error) {
	if opts.Keep < 1 {
		return nil, fmt.Errorf("journal %s: keep must be at least 1", prefix)
	}
	if opts.MaxAge < 0 {
		return nil, fmt.Errorf("journal %s: max age must not be negative", prefix)
	}
	return &Journal{cli: cli, prefix: prefix + "/", opts: opts, now: time.Now}, nil
}

func (j *Journal) key(n uint64) string { return fmt.Sprintf("%s%020d", j.prefix, n) }

// last reads the newest record's number (0 when the journal is empty).
func (j *Journal) last(ctx context.Context) (uint64, error) {
	resp, err := j.cli.Get(ctx, j.prefix, clientv3.WithLastKey()...)
	if err != nil {
		return 0, fmt.Errorf("etcd get %s: %w", j.prefix, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	return j.seqOf(resp.Kvs[0].Key)
}

func (j *Journal) seqOf(key []byte) (uint64, error) {
	n, err := strconv.ParseUint(string(key[len(j.prefix):]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("etcd %s: a key that is not a record number: %s", j.prefix, key)
	}
	return n, nil
}

// Append numbers a record and writes it: encode gets the number and
// answers the record's JSON. It returns the number written.
func (j *Journal) Append(ctx context.Context, encode func(seq uint64) ([]byte, error)) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	j.mu.Lock()
	defer j.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if j.next == 0 {
			n, err := j.last(ctx)
			if err != nil {
				return 0, err
			}
			j.next = n + 1
		}
		seq := j.next
		v, err := encode(seq)
		if err != nil {
			return 0, err
		}
		k := j.key(seq)
		resp, err := j.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).Then(clientv3.OpPut(k, string(v))).Commit()
		if err != nil {
			j.next = 0 // unknown whether it was written: read the newest again
			return 0, fmt.Errorf("etcd put %s: %w", k, err)
		}
		if !resp.Succeeded {
			// Another server wrote this number: continue after the newest.
			j.next = 0
			if attempt >= 100 {
				return 0, fmt.Errorf("etcd %s: no free record number after %d attempts", j.prefix, attempt)
			}
			continue
		}
		j.next = seq + 1
		if seq%pruneEvery == 0 {
			if err := j.prune(ctx, seq); err != nil {
				return seq, err
			}
		}
		return seq, nil
	}
}

// prune applies retention after record newest was written; the newest
// record is always kept (it carries the numbering on).
func (j *Journal) prune(ctx context.Context, newest uint64) error {
	cut := uint64(0) // records below cut go
	if newest > uint64(j.opts.Keep) {
		cut = newest - uint64(j.opts.Keep) + 1
	}
	if j.opts.MaxAge > 0 {
		old := j.now().Add(-j.opts.MaxAge)
		resp, err := j.cli.Get(ctx, j.key(cut), clientv3.WithRange(j.key(newest)), clientv3.WithLimit(1000),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
		if err != nil {
			return fmt.Errorf("etcd get %s: %w", j.prefix, err)
		}
		for _, kv := range resp.Kvs {
			var r struct {
				Time time.Time `json:"time"`
			}
			if json.Unmarshal(kv.Value, &r) != nil || !r.Time.Before(old) {
				break
			}
			n, err := j.seqOf(kv.Key)
			if err != nil {
				return err
			}
			cut = n + 1
		}
	}
	if cut == 0 {
		return nil
	}
	if _, err := j.cli.Delete(ctx, j.key(0), clientv3.WithRange(j.key(cut))); err != nil {
		return fmt.Errorf("etcd delete %s below %d: %w", j.prefix, cut, err)
	}
	return nil
}

// Newest calls fn with the records numbered below before (0: every
// record), newest first, until fn answers false or the records end.
func (j *Journal) Newest(ctx context.Context, before uint64, fn func(seq uint64, v []byte) bool) error {
	end := clientv3.GetPrefixRangeEnd(j.prefix)
	if before != 0 {
		end = j.key(before)
	}
	const batch = 256
	for {
		resp, err := j.cli.Get(ctx, j.prefix, clientv3.WithRange(end), clientv3.WithLimit(batch),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
		if err != nil {
			return fmt.Errorf("etcd get %s: %w", j.prefix, err)
		}
		for _, kv := range resp.Kvs {
			n, err := j.seqOf(kv.Key)
			if err != nil {
				return err
			}
			if !fn(n, kv.Value) {
				return nil
			}
			end = string(kv.Key)
		}
		if len(resp.Kvs) < batch {
			return nil
		}
	}
}
