package spans

import "testing"

func TestPeerService(t *testing.T) {
	for _, tc := range []struct {
		name  string
		kind  Kind
		attrs []Attr
		want  string
	}{
		{"mesh destination", KindClient, []Attr{StringAttr("mesh.destination.service", "pricing"), StringAttr("server.address", "127.0.0.1")}, "pricing"},
		{"mesh unknown falls back", KindClient, []Attr{StringAttr("mesh.destination.service", "unknown"), StringAttr("peer.service", "stripe")}, "stripe"},
		{"mesh external falls back", KindClient, []Attr{StringAttr("mesh.destination.service", "external"), StringAttr("server.address", "billing")}, "billing"},
		{"peer.service", KindClient, []Attr{StringAttr("peer.service", "stripe"), StringAttr("server.address", "ledger")}, "stripe"},
		{"bare server.address", KindClient, []Attr{StringAttr("server.address", "ledger")}, "ledger"},
		{"net.peer.name", KindClient, []Attr{StringAttr("net.peer.name", "ledger")}, "ledger"},
		{"dotted host", KindClient, []Attr{StringAttr("server.address", "api.example.com")}, ""},
		{"ip", KindClient, []Attr{StringAttr("server.address", "10.0.0.1")}, ""},
		{"ipv6", KindClient, []Attr{StringAttr("server.address", "::1")}, ""},
		{"localhost", KindClient, []Attr{StringAttr("server.address", "localhost")}, ""},
		{"server.address wins over net.peer.name", KindClient, []Attr{StringAttr("server.address", "127.0.0.1"), StringAttr("net.peer.name", "ledger")}, ""},
		{"server span", KindServer, []Attr{StringAttr("peer.service", "stripe")}, ""},
		{"no attributes", KindClient, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Span{Kind: tc.kind, Attrs: tc.attrs}
			if got := s.PeerService(); got != tc.want {
				t.Fatalf("PeerService() = %q, want %q", got, tc.want)
			}
		})
	}
}
