// Package freeport picks loopback addresses for servers started as separate
// processes: the demo's proxies and services, and the tests' real servers
// (the meshscope binaries, Prometheus, Alertmanager, etcd, ClickHouse).
//
// A port found free is released before the server binds it. A port from
// the kernel's ephemeral range (net.ipv4.ip_local_port_range) could in the
// meantime become the local port of some outgoing connection, and there
// are many during a demo or a test run (etcd peers, scrapes, readiness
// probes); the server would then exit on "address already in use". So
// Addrs picks from just below that range, where connect never picks, and
// checks each port free by binding it.
package freeport
