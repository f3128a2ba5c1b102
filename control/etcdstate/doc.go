// Package etcdstate keeps the control plane's shared state in etcd so that
// several meshscope servers form one control plane: the policy log (one
// key per version, written with a create-only transaction so two servers
// never write the same version; watched so every server follows every
// change), the leader election of the controllers (etcd's concurrency
// package: a lease-bound session and an election key), and the mesh CA's
// fingerprint (a server with another CA refuses to join).
package etcdstate
