package etcdstate

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/meshscope/meshscope/control/registry"
)

// Peers shares the service registry between the servers of a cluster:
// each server writes its proxies below <prefix>/registry/<server id>/,
// bound to its own lease (a dead server's proxies leave with its lease),
// and watches the others'. It serves registry.Publisher; Run feeds the
// other servers' proxies to a registry.
type Peers struct {
	cli    *clientv3.Client
	prefix string // <prefix>/registry/
	server string
	ttl    time.Duration
	logger *slog.Logger

	mu      sync.Mutex
	mine    map[string]registry.Peer // what this server publishes
	pending map[string]bool          // proxy ids to write or delete
	kick    chan struct{}
}

var _ registry.Publisher = (*Peers)(nil)

// NewPeers shares the registry of server id below cfg.Prefix.
func NewPeers(cli *clientv3.Client, cfg Config, id string, logger *slog.Logger) *Peers {
	return &Peers{cli: cli, prefix: cfg.Prefix + "/registry/", server: id, ttl: cfg.LeaseTTL, logger: logger,
		mine: map[string]registry.Peer{}, pending: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// Publish queues a proxy's registration (nil: its withdrawal).
func (p *Peers) Publish(proxyID string, peer *registry.Peer) {
	p.mu.Lock()
	if peer == nil {
		delete(p.mine, proxyID)
	} else {
		p.mine[proxyID] = *peer
	}
	p.pending[proxyID] = true
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Run writes this server's proxies and feeds the others' to sink until
// ctx ends; a lost lease is replaced and everything written again.
func (p *Peers) Run(ctx context.Context, sink func(map[string]registry.Peer)) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.watch(ctx, sink)
	}()
	for ctx.Err() == nil {
		if err := p.term(ctx); err != nil && ctx.Err() == nil {
			p.logger.Warn("sharing the registry", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	wg.Wait()
	return nil
}

// term writes under one lease until it ends (or ctx does).
func (p *Peers) term(ctx context.Context) error {
	sess, err := concurrency.NewSession(p.cli, concurrency.WithTTL(int(p.ttl/time.Second)))
	if err != nil {
		return fmt.Errorf("opening an etcd session: %w", err)
	}
	defer func() { _ = sess.Close() }() // revokes the lease: the others drop this server's proxies now
	p.mu.Lock()
	for id := range p.mine {
		p.pending[id] = true // a new lease: write everything again
	}
	p.mu.Unlock()
	for {
		if err := p.flush(ctx, sess.Lease()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-sess.Done():
			return fmt.Errorf("etcd session of the registry ended")
		case <-p.kick:
		}
	}
}

// flush writes the pending registrations.
func (p *Peers) flush(ctx context.Context, lease clientv3.LeaseID) error {
	p.mu.Lock()
	var ops []clientv3.Op
	for id := range p.pending {
		k := p.prefix + p.server + "/" + id
		if peer, ok := p.mine[id]; ok {
			b, err := json.Marshal(peer)
			if err != nil {
				p.mu.Unlock()
				return fmt.Errorf("encoding proxy %s: %w", id, err)
			}
			ops = append(ops, clientv3.OpPut(k, string(b), clientv3.WithLease(lease)))
		} else {
			ops = append(ops, clientv3.OpDelete(k))
		}
	}
	p.pending = map[string]bool{}
	p.mu.Unlock()
	for _, op := range ops {
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		_, err := p.cli.Do(wctx, op)
		cancel()
		if err != nil {
			p.mu.Lock()
			p.pending[strings.TrimPrefix(string(op.KeyBytes()), p.prefix+p.server+"/")] = true
			p.mu.Unlock()
			return fmt.Errorf("etcd %s: %w", op.KeyBytes(), err)
		}
	}
	return nil
}

// watch keeps the other servers' proxies and hands every new set to sink.
func (p *Peers) watch(ctx context.Context, sink func(map[string]registry.Peer)) {
	own := p.prefix + p.server + "/"
	byKey := map[string]registry.Peer{}
	apply := func(key string, value []byte, deleted bool) {
		if strings.HasPrefix(key, own) {
			return
		}
		if deleted {
			delete(byKey, key)
			return
		}
		var peer registry.Peer
		if err := json.Unmarshal(value, &peer); err != nil {
			p.logger.Warn("a damaged registry entry in etcd", "key", key, "err", err)
			return
		}
		byKey[key] = peer
	}
	publish := func() {
		out := map[string]registry.Peer{}
		for _, peer := range byKey {
			out[peer.Hello.ProxyID] = peer
		}
		sink(out)
	}
	for ctx.Err() == nil {
		resp, err := p.cli.Get(ctx, p.prefix, clientv3.WithPrefix())
		if err != nil {
			p.logger.Warn("reading the shared registry", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		clear(byKey)
		for _, kv := range resp.Kvs {
			apply(string(kv.Key), kv.Value, false)
		}
		publish()
		for wr := range p.cli.Watch(clientv3.WithRequireLeader(ctx), p.prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				apply(string(ev.Kv.Key), ev.Kv.Value, ev.Type == clientv3.EventTypeDelete)
			}
			publish()
		}
		if p.cli.Ctx().Err() != nil {
			return // the client is closed
		}
	}
}
