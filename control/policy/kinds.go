package policy

import "strings"

// Kind describes one document kind.
type Kind struct {
	// Name is the kind as written in documents (Route).
	Name string
	// New returns an empty spec of this kind.
	New func() Spec
	// OnePerService means a service has at most one document of this kind.
	OnePerService bool
	// NoMode means documents of this kind take no observe/enforce mode.
	NoMode bool
}

// Kind names.
const (
	KindRoute      = "Route"
	KindResilience = "Resilience"
	KindSLO        = "SLO"
	KindRollout    = "Rollout"
	KindGateway    = "Gateway"
	KindGuard      = "Guard"
	// KindPeerAuthentication and KindAuthorization are docs/mtls.md's.
	KindPeerAuthentication = "PeerAuthentication"
	KindAuthorization      = "Authorization"
)

// kinds is the kind table: adding a kind is one entry here and one file
// with its spec type. It is never modified.
var kinds = [...]Kind{
	{Name: KindRoute, New: func() Spec { return new(Route) }, OnePerService: true},
	{Name: KindResilience, New: func() Spec { return new(Resilience) }, OnePerService: true},
	{Name: KindSLO, New: func() Spec { return new(SLO) }},
	{Name: KindRollout, New: func() Spec { return new(Rollout) }, OnePerService: true, NoMode: true},
	{Name: KindGateway, New: func() Spec { return new(Gateway) }, OnePerService: true},
	{Name: KindGuard, New: func() Spec { return new(Guard) }},
	{Name: KindPeerAuthentication, New: func() Spec { return new(PeerAuthentication) }, OnePerService: true},
	{Name: KindAuthorization, New: func() Spec { return new(Authorization) }, OnePerService: true},
}

// Kinds returns the known kinds.
func Kinds() []Kind { return append([]Kind(nil), kinds[:]...) }

// KindNames returns the names of the known kinds.
func KindNames() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.Name
	}
	return out
}

// LookupKind finds a kind by name, ignoring case (route, Route, ROUTE).
func LookupKind(name string) (Kind, bool) { return lookupKind(name) }

func lookupKind(name string) (Kind, bool) {
	for _, k := range kinds {
		if strings.EqualFold(k.Name, name) {
			return k, true
		}
	}
	return Kind{}, false
}
