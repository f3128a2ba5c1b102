// Package meshtls is the proxy's side of mesh mTLS: it holds the proxy's
// key and certificate (requested from the control plane over the control
// stream, rotated at 2/3 of its life; new connections get the new
// certificate through GetCertificate/GetClientCertificate, open ones keep
// theirs), dials meshed peers with mTLS (ALPN wire.MeshALPN) verifying
// their SPIFFE identity against the mesh root, and terminates mesh mTLS on
// inbound listeners, reporting the caller's identity. Without a valid
// certificate (control plane not reached yet) traffic stays plaintext: a
// proxy never fails a request because the control plane is down.
//
// docs/mtls.md describes identities, rotation and the rollout.
package meshtls
