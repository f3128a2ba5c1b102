// Package cli implements the policy subcommands of the `meshscope` binary
// — apply, get, delete, history and rollback — which talk to a running
// server's policy API (--server, default http://127.0.0.1:7070).
package cli
