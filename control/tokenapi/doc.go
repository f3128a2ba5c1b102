// Package tokenapi is the admins' HTTP API for bearer tokens:
// GET /api/mesh/v1/tokens lists them (names, roles, sources; never a
// secret or hash), POST creates one (the token is in the answer only; the
// server keeps its SHA-256 in the token store beside the --auth-file's),
// DELETE /api/mesh/v1/tokens/{name} revokes one created through the API.
// Every change, and every refused one, is appended to the audit log. The
// auth middleware lets only the admin role reach these routes
// (docs/security.md).
package tokenapi
