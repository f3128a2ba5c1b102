package etcdstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// writeTimeout bounds one write to etcd.
const writeTimeout = 10 * time.Second

// Elector campaigns for the controllers' leadership of the cluster. Run it
// as a lifecycle runner; IsLeader answers whether this server leads now.
type Elector struct {
	cli      *clientv3.Client
	key      string
	id       string
	ttl      time.Duration
	logger   *slog.Logger
	leader   atomic.Bool
	election atomic.Pointer[concurrency.Election] // while leading
	won      prometheus.Counter
}

// NewElector campaigns under <prefix>/leader as id (the server's address).
func NewElector(cli *clientv3.Client, cfg Config, id string, reg prometheus.Registerer, logger *slog.Logger) (*Elector, error) {
	e := &Elector{
		cli: cli, key: cfg.Prefix + "/leader", id: id, ttl: cfg.LeaseTTL, logger: logger,
		won: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshscope_control_leader_elections_won_total", Help: "Times this server became the controllers' leader.",
		}),
	}
	if err := reg.Register(e.won); err != nil {
		return nil, fmt.Errorf("registering leader metrics: %w", err)
	}
	return e, nil
}

// IsLeader reports whether this server leads the controllers now.
func (e *Elector) IsLeader() bool { return e.leader.Load() }

// ID is this server's name in the election.
func (e *Elector) ID() string { return e.id }

// Leader asks etcd who leads now ("" when no one does).
func (e *Elector) Leader(ctx context.Context) (string, error) {
	resp, err := e.cli.Get(ctx, e.key+"/", append(clientv3.WithFirstCreate(), clientv3.WithPrefix())...)
	if err != nil {
		return "", fmt.Errorf("etcd get %s: %w", e.key, err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// Run campaigns until ctx ends: it leads while its lease lives and
// campaigns again after losing it. On stop it resigns, so that another
// server takes over at once.
func (e *Elector) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		if err := e.term(ctx); err != nil && ctx.Err() == nil {
			e.logger.Warn("leader election", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// term is one session: campaign, lead until the session or ctx ends.
func (e *Elector) term(ctx context.Context) error {
	sess, err := concurrency.NewSession(e.cli, concurrency.WithTTL(int(e.ttl/time.Second)))
	if err != nil {
		return fmt.Errorf("opening an etcd session: %w", err)
	}
	defer func() { _ = sess.Close() }() // revokes the lease: another server's campaign wins now
	el := concurrency.NewElection(sess, e.key)
	if err := el.Campaign(ctx, e.id); err != nil {
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return fmt.Errorf("campaigning: %w", err)
	}
	e.election.Store(el)
	e.leader.Store(true)
	e.won.Inc()
	e.logger.Info("leading the controllers", "id", e.id, "lease", fmt.Sprintf("%x", sess.Lease()))
	select {
	case <-ctx.Done():
		e.leader.Store(false) // before resigning: never two leaders in one process's view
		e.election.Store(nil)
		rctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		defer cancel()
		_ = el.Resign(rctx)
		e.logger.Info("resigned the controllers' leadership", "id", e.id)
		return nil
	case <-sess.Done():
		e.leader.Store(false)
		e.election.Store(nil)
		// The lease expired (etcd unreachable longer than its TTL):
		// another server may lead already.
		e.logger.Warn("lost the controllers' leadership: etcd session ended", "id", e.id)
		return nil
	}
}

// errNotLeader answers a fenced write of a server that does not lead.
var errNotLeader = errors.New("this server does not lead the controllers (any more); not written")

// fence is the condition of a write only the leader may make: its
// election key is still the one it won with.
func (e *Elector) fence() (clientv3.Cmp, error) {
	el := e.election.Load()
	if el == nil {
		return clientv3.Cmp{}, errNotLeader
	}
	return clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev()), nil
}
