package etcdstate

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Blobs keeps a controller's state documents below a prefix, one key per
// name. Only the leader writes: every Save is a transaction that holds
// only while the writer's election key is the one it won with, so a
// deposed leader that has not noticed yet cannot overwrite its
// successor's state. It serves rollout.StateStore and guard.StateStore.
type Blobs struct {
	cli    *clientv3.Client
	prefix string // ends in "/"
	leader *Elector
}

// NewBlobs keeps documents below prefix, written while leader leads.
func NewBlobs(cli *clientv3.Client, prefix string, leader *Elector) *Blobs {
	return &Blobs{cli: cli, prefix: prefix + "/", leader: leader}
}

// Load reads every document.
func (b *Blobs) Load() (map[string][]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	resp, err := b.cli.Get(ctx, b.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd get %s: %w", b.prefix, err)
	}
	out := make(map[string][]byte, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[strings.TrimPrefix(string(kv.Key), b.prefix)] = kv.Value
	}
	return out, nil
}

// Save writes one document if this server still leads.
func (b *Blobs) Save(name string, v []byte) error {
	k := b.prefix + name
	fence, err := b.leader.fence()
	if err != nil {
		return fmt.Errorf("etcd %s: %w", k, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	resp, err := b.cli.Txn(ctx).If(fence).Then(clientv3.OpPut(k, string(v))).Commit()
	if err != nil {
		return fmt.Errorf("etcd put %s: %w", k, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("etcd %s: %w", k, errNotLeader)
	}
	return nil
}
