package clickhouse

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"
)

// TestSampleClusterConfig checks that deploy/clickhouse is well-formed and
// consistent: the cluster the docs name has one shard of two replicas, each
// replica has the macros the ReplicatedMergeTree paths use, and the Keeper
// ensemble lists the same three members everywhere.
func TestSampleClusterConfig(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "deploy", "clickhouse")
	read := func(name string, v any) {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := xml.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var cluster struct {
		Shards []struct {
			Internal bool `xml:"internal_replication"`
			Replicas []struct {
				Host string `xml:"host"`
				Port int    `xml:"port"`
			} `xml:"replica"`
		} `xml:"remote_servers>meshscope>shard"`
		Keepers []string `xml:"zookeeper>node>host"`
	}
	read("cluster.xml", &cluster)
	if len(cluster.Shards) != 1 || len(cluster.Shards[0].Replicas) != 2 || !cluster.Shards[0].Internal {
		t.Fatalf("cluster meshscope = %+v, want 1 shard of 2 replicas with internal_replication", cluster.Shards)
	}
	if len(cluster.Keepers) != 3 {
		t.Fatalf("zookeeper nodes = %v, want 3", cluster.Keepers)
	}
	type raft struct {
		ID   int    `xml:"id"`
		Host string `xml:"hostname"`
	}
	for i, r := range cluster.Shards[0].Replicas {
		var macros struct {
			Shard   string `xml:"macros>shard"`
			Replica string `xml:"macros>replica"`
		}
		read(filepath.Join(r.Host, "macros.xml"), &macros)
		if macros.Shard == "" || macros.Replica != r.Host {
			t.Fatalf("%s/macros.xml = %+v, want shard set and replica %s", r.Host, macros, r.Host)
		}
		var keeper struct {
			ID      int    `xml:"keeper_server>server_id"`
			Servers []raft `xml:"keeper_server>raft_configuration>server"`
		}
		read(filepath.Join(r.Host, "keeper.xml"), &keeper)
		if keeper.ID != i+1 || len(keeper.Servers) != 3 {
			t.Fatalf("%s/keeper.xml = %+v", r.Host, keeper)
		}
		for j, s := range keeper.Servers {
			if s.Host != cluster.Keepers[j] {
				t.Fatalf("%s/keeper.xml raft member %d is %s, zookeeper lists %s", r.Host, j, s.Host, cluster.Keepers[j])
			}
		}
	}
	var users struct {
		Hash string `xml:"users>meshscope>password_sha256_hex"`
	}
	read("users.xml", &users)
	if len(users.Hash) != 64 {
		t.Fatalf("users.xml: password hash %q", users.Hash)
	}
	var k3 struct {
		ID int `xml:"keeper_server>server_id"`
	}
	read(filepath.Join("keeper3", "keeper_config.xml"), &k3)
	if k3.ID != 3 {
		t.Fatalf("keeper3 server_id = %d, want 3", k3.ID)
	}
	if err := (Config{DSN: "clickhouse://meshscope:password@ch1:9000,ch2:9000/traces", Cluster: "meshscope"}).Validate(); err != nil {
		t.Fatalf("the documented configuration is invalid: %v", err)
	}
}
