package etcdstate

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// CheckCA records fingerprint as the cluster's mesh CA if none is
// recorded yet, and refuses a server whose CA differs: proxies of one
// mesh must trust one CA whichever server signed their certificates.
func CheckCA(ctx context.Context, cli *clientv3.Client, prefix, fingerprint string) error {
	k := prefix + "/ca/fingerprint"
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	resp, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, fingerprint)).Else(clientv3.OpGet(k)).Commit()
	if err != nil {
		return fmt.Errorf("etcd %s: %w", k, err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 && string(kvs[0].Value) != fingerprint {
		return fmt.Errorf("this server's mesh CA (sha256 %s) is not the CA of the other servers of this etcd cluster (sha256 %s at %s): start every server with the same --ca-cert and --ca-key", fingerprint, kvs[0].Value, k)
	}
	return nil
}
