package policy

import (
	"strings"
	"testing"
)

const gatewayBase = `kind: Gateway
name: edge
service: edge
listeners:
  - address: 127.0.0.1:8443
    tls: {certificates: [{hosts: [shop.example], cert_file: shop.crt, key_file: shop.key}]}
  - address: 127.0.0.1:8080
    https_redirect: true
routes:
  - host: shop.example
    path_prefix: /api/
    service: web
    jwt: {issuer: https://issuer.example, audiences: [shop], jwks_file: jwks.json}
    rate_limit: {requests_per_second: 10, burst: 5}
  - service: web@127.0.0.1:9000
    anonymous: true
`

func TestGatewayDefaults(t *testing.T) {
	docs, err := Load([]byte(gatewayBase))
	if err != nil {
		t.Fatal(err)
	}
	g := docs[0].Gateway()
	r := g.Routes[0]
	if r.MaxRequestBytes != 1<<20 || r.JWT.Refresh.D().String() != "5m0s" || r.JWT.ClockSkew.D().String() != "30s" || r.RateLimit.Key != "client_ip" {
		t.Fatalf("defaults not filled: %+v %+v %+v", r, r.JWT, r.RateLimit)
	}
}

func TestGatewayErrors(t *testing.T) {
	for _, tc := range []struct{ old, new, want string }{
		{"address: 127.0.0.1:8443", "address: nowhere", "listeners[0].address"},
		{"hosts: [shop.example]", "hosts: []", "listeners[0].tls.certificates[0].hosts"},
		{"hosts: [shop.example]", "hosts: [\"bad host\"]", "listeners[0].tls.certificates[0].hosts[0]"},
		{", key_file: shop.key", "", "listeners[0].tls.certificates[0].key_file"},
		{"    https_redirect: true\n", "    h2c: true\n    bogus: 1\n", "listeners[1].bogus: unknown field"},
		{"path_prefix: /api/", "path_prefix: api", "routes[0].path_prefix"},
		{"path_prefix: /api/", "path_prefix: /api/\n    path_exact: /x", "routes[0]: set at most one"},
		{"path_prefix: /api/", "path_regex: '(['", "routes[0].path_regex"},
		{"service: web\n", "service: Web!\n", "routes[0].service"},
		{"service: web@127.0.0.1:9000", "service: web@nowhere", "routes[1].service"},
		{"    anonymous: true\n", "", "routes[1]: set jwt, or anonymous: true"},
		{"audiences: [shop]", "audiences: []", "routes[0].jwt.audiences"},
		{"jwks_file: jwks.json", "jwks_url: http://issuer.example/jwks", "routes[0].jwt.jwks_url"},
		{"jwks_file: jwks.json", "jwks_file: j, jwks_url: https://x/j", "routes[0].jwt: set exactly one"},
		{"jwks_file: jwks.json", "jwks_file: jwks.json, algorithms: [HS256]", "routes[0].jwt.algorithms[0]"},
		{"jwks_file: jwks.json", "jwks_file: jwks.json, clock_skew: 5m", "routes[0].jwt.clock_skew"},
		{"burst: 5", "burst: 5, key: cookie", "routes[0].rate_limit.key"},
		{"requests_per_second: 10", "requests_per_second: 0", "routes[0].rate_limit.requests_per_second"},
		{"    anonymous: true\n", "    anonymous: true\n    rate_limit: {requests_per_second: 1, key: 'claim:sub'}\n", "a claim key needs jwt"},
		{"    anonymous: true\n", "    anonymous: true\n    cors: {allow_origins: ['*'], allow_credentials: true}\n", "routes[1].cors.allow_credentials"},
		{"    anonymous: true\n", "    anonymous: true\n    request_headers: {set: {'bad header': x}}\n", "routes[1].request_headers"},
	} {
		doc := strings.Replace(gatewayBase, tc.old, tc.new, 1)
		if doc == gatewayBase {
			t.Fatalf("%q not in the base document", tc.old)
		}
		_, err := Load([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q → %q: error %v, want it to name %q", tc.old, tc.new, err, tc.want)
		}
	}
}

func TestGatewayOnePerService(t *testing.T) {
	docs, err := Load([]byte(gatewayBase + "---\n" + strings.Replace(gatewayBase, "name: edge", "name: edge2", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckSet(docs); err == nil || !strings.Contains(err.Error(), "one Gateway per service") {
		t.Fatalf("two Gateways for one service: %v", err)
	}
}
