// Package ca is the mesh certificate authority run by `meshscope server`:
// it loads or creates the root key and certificate in <data>/ca (or uses
// a user-supplied root or intermediate, --ca-cert/--ca-key) and signs the
// certificate requests proxies send over the control stream with short-lived
// leaf certificates whose only identity is a SPIFFE ID in the URI SAN,
// spiffe://TRUST_DOMAIN/service/NAME. docs/mtls.md describes identities and
// rotation.
package ca
