// Package auth authenticates and authorizes callers of `meshscope server`:
// the auth file (--auth-file: bearer tokens stored as SHA-256 hashes and
// users with bcrypt passwords, each with a role), the HTTP middleware in
// front of the UI and every API (bearer token or cookie session with a
// double-submit CSRF token), the same check on the OTLP listeners
// (answering gRPC callers with UNAUTHENTICATED / PERMISSION_DENIED), the
// login/logout/whoami endpoints under /api/auth/v1, and the secure bind
// rule (no auth file: loopback only unless --insecure).
//
// Roles: viewer (read) < operator (apply policies, guards, rollouts) <
// admin (tokens, CA); ingest writes telemetry only; proxy connects the
// control stream and writes telemetry. The format and the rules are
// documented in docs/security.md.
package auth
