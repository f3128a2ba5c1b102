package wire

import (
	"errors"
	"strings"
	"testing"

	"github.com/meshscope/meshscope/control/policy"
)

func TestEncodeDecode(t *testing.T) {
	docs, err := policy.Load([]byte("kind: Route\nname: r\nservice: inventory\nmode: enforce\nrules:\n- backends: [{version: v1, weight: 80}, {version: v2, weight: 20}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	in := &Snapshot{Version: 7, Generation: 9, Services: map[string]Service{
		"inventory": {
			Endpoints: []Endpoint{{Address: "127.0.0.1:9001", Version: "v1", ProxyID: "p1", Mode: policy.ModeEnforce, Health: HealthHealthy}},
			Policies:  docs,
		},
	}}
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `{"type":"snapshot","version":7,`) {
		t.Errorf("encoded = %s", b)
	}
	msg, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	out, ok := msg.(*Snapshot)
	if !ok {
		t.Fatalf("decoded %T", msg)
	}
	svc := out.Services["inventory"]
	if out.Version != 7 || len(svc.Endpoints) != 1 || svc.Endpoints[0].Address != "127.0.0.1:9001" {
		t.Errorf("decoded = %+v", out)
	}
	r := svc.Policies[0].Route()
	if r == nil || r.Rules[0].Backends[1].Weight != 20 || svc.Policies[0].Mode != policy.ModeEnforce {
		t.Errorf("policy = %+v", svc.Policies[0])
	}
}

func TestDecodeErrors(t *testing.T) {
	for in, want := range map[string]string{
		`[]`:                              "not a JSON object",
		`{}`:                              "no type",
		`{"type":"delta"}`:                "unknown message type",
		`{"type":"hello","protocol":"x"}`: "hello message",
	} {
		_, err := Decode([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%s) = %v, want %q", in, err, want)
		}
	}
	_, err := Decode([]byte(`{"type":"gossip"}`))
	if !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type error %v is not ErrUnknownType", err)
	}
}

func TestHelloValidate(t *testing.T) {
	good := Hello{Protocol: Protocol, ProxyID: "p1", Service: "web", Version: "v1", Mode: policy.ModeObserve, Inbound: []string{"127.0.0.1:8080"}, Upstreams: []string{"cart"}}
	if err := good.Validate(); err != nil {
		t.Fatalf("good hello: %v", err)
	}
	for _, tc := range []struct {
		mut  func(h *Hello)
		want string
	}{
		{func(h *Hello) { h.Protocol = 2 }, "protocol 2"},
		{func(h *Hello) { h.ProxyID = "" }, "proxy_id"},
		{func(h *Hello) { h.Service = "Web" }, "service"},
		{func(h *Hello) { h.Mode = "audit" }, "mode"},
		{func(h *Hello) { h.Inbound = []string{"nowhere"} }, "inbound[0]"},
		{func(h *Hello) { h.Upstreams = []string{"ok", "Not OK"} }, "upstreams[1]"},
		{func(h *Hello) { h.MTLS = []string{"127.0.0.1:9999"} }, "mtls[0]"},
	} {
		h := good
		tc.mut(&h)
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate = %v, want %q", err, tc.want)
		}
	}
}

// FuzzDecode: Decode never panics, and what it decodes encodes again.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","protocol":1,"proxy_id":"p","service":"web","version":"v1","inbound":["127.0.0.1:1"],"mode":"observe","upstreams":["a"]}`,
		`{"type":"snapshot","version":3,"services":{"a":{"endpoints":[{"address":"x:1","version":"v1","health":"healthy"}],"policies":[{"kind":"Route","name":"r","service":"a","timeout":"1s"},{"kind":"Gadget","name":"g","service":"a"}]}}}`,
		`{"type":"status","config_version":3,"health":"unhealthy","endpoints":[{"service":"a","address":"x:1","ejected":true,"until":"2026-01-01T00:00:00Z"}]}`,
		`{"type":"error","message":"no"}`,
		`{"type":"cert_request","csr":"-----BEGIN CERTIFICATE REQUEST-----\nAA==\n-----END CERTIFICATE REQUEST-----\n"}`,
		`{"type":"cert","chain":"x","bundle":"y","spiffe_id":"spiffe://d/service/a","trust_domain":"d"}`,
		`{"type":"cert","error":"denied"}`,
		`{"type":"hello","protocol":1,"proxy_id":"p","service":"web","version":"v1","inbound":["127.0.0.1:1"],"mtls":["127.0.0.1:1"],"mode":"observe"}`,
		`{"type":"snapshot","services":{"a":{"policies":[{"kind":"Route","timeout":5}]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		msg, err := Decode(in)
		if err != nil {
			return
		}
		if _, err := Encode(msg); err != nil {
			t.Fatalf("decoded %T does not encode: %v", msg, err)
		}
		if h, ok := msg.(*Hello); ok {
			_ = h.Validate()
		}
	})
}

func TestCertMessages(t *testing.T) {
	for _, in := range []any{&CertRequest{CSR: "pem"}, &Cert{Chain: "c", Bundle: "b", SPIFFEID: "spiffe://d/service/a", TrustDomain: "d"}, &Cert{Error: "no"}} {
		b, err := Encode(in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, _ := Encode(out)
		if string(b) != string(b2) {
			t.Errorf("round trip %s → %s", b, b2)
		}
	}
}
