package policy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

// Mode says whether a policy acts on traffic.
type Mode string

// Modes. The empty mode means "the proxy's own --mode".
const (
	// ModeObserve evaluates the policy and records what it would have done.
	ModeObserve Mode = "observe"
	// ModeEnforce evaluates the policy, records the decision and acts on it.
	ModeEnforce Mode = "enforce"
	// ModeAudit is an Authorization's observe mode: would-deny decisions
	// are counted and traced, nothing is denied.
	ModeAudit Mode = "audit"
)

// Meta is the envelope every policy document has.
type Meta struct {
	// Kind names the document type (Route, Resilience, ...).
	Kind string `yaml:"kind" json:"kind"`
	// Name identifies the document within its kind.
	Name string `yaml:"name" json:"name"`
	// Service is the destination service the policy applies to.
	Service string `yaml:"service" json:"service"`
	// Mode overrides the proxy's own mode for this policy; empty = the
	// proxy's mode.
	Mode Mode `yaml:"mode,omitempty" json:"mode,omitempty"`
}

// Key identifies a document: its kind and name.
type Key struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

func (k Key) String() string { return k.Kind + "/" + k.Name }

// Spec is the kind-specific part of a document (*Route, *Resilience, ...).
type Spec interface {
	// Validate checks the spec after defaults were filled. It returns a
	// *FieldError naming the field relative to the document.
	Validate() error
}

// Document is one policy: the envelope and its kind's spec. In YAML and
// JSON the envelope and spec fields sit side by side in one object.
type Document struct {
	Meta
	// Spec is nil only for a document of a kind this build does not know
	// (decoded from JSON sent by a newer server); Raw then holds it.
	Spec Spec
	// Raw is the JSON a document of an unknown kind was decoded from.
	Raw json.RawMessage `json:"-" yaml:"-"`
}

// Key returns the document's kind and name.
func (d *Document) Key() Key { return Key{d.Kind, d.Name} }

// Ref is how errors name a document: route "inventory-split".
func (d *Document) Ref() string {
	return fmt.Sprintf("%s %q", strings.ToLower(d.Kind), d.Name)
}

// EffectiveMode returns the document's mode, or proxyMode when it has none.
func (d *Document) EffectiveMode(proxyMode Mode) Mode {
	if d.Mode != "" {
		return d.Mode
	}
	return proxyMode
}

// Route returns the spec of a Route document, or nil.
func (d *Document) Route() *Route { r, _ := d.Spec.(*Route); return r }

// Resilience returns the spec of a Resilience document, or nil.
func (d *Document) Resilience() *Resilience { r, _ := d.Spec.(*Resilience); return r }

// PeerAuthentication returns the spec of a PeerAuthentication document, or nil.
func (d *Document) PeerAuthentication() *PeerAuthentication {
	p, _ := d.Spec.(*PeerAuthentication)
	return p
}

// Authorization returns the spec of an Authorization document, or nil.
func (d *Document) Authorization() *Authorization { a, _ := d.Spec.(*Authorization); return a }

// SLO returns the spec of an SLO document, or nil.
func (d *Document) SLO() *SLO { s, _ := d.Spec.(*SLO); return s }

// Gateway returns the spec of a Gateway document, or nil.
func (d *Document) Gateway() *Gateway { g, _ := d.Spec.(*Gateway); return g }

// FieldError is a validation error naming a field by its path within the
// document, e.g. rules[0].backends[1].weight.
type FieldError struct {
	Path string
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

func fieldErr(path, format string, args ...any) *FieldError {
	return &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// nameRE is the syntax of names and services: DNS-label-like, dots allowed.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,251}[a-z0-9])?$`)

// Validate checks the envelope and the spec; the error names the document
// and the field: route "inv": rules[0].backends[1].weight: must be 0..100.
func (d *Document) Validate() error {
	if err := d.validate(); err != nil {
		return fmt.Errorf("%s: %w", d.Ref(), err)
	}
	return nil
}

func (d *Document) validate() error {
	k, ok := lookupKind(d.Kind)
	switch {
	case !ok:
		return fieldErr("kind", "unknown kind %q (want one of %s)", d.Kind, strings.Join(KindNames(), ", "))
	case d.Kind != k.Name:
		return fieldErr("kind", "%q: spell it %q", d.Kind, k.Name)
	case d.Name == "":
		return fieldErr("name", "must be set")
	case !nameRE.MatchString(d.Name):
		return fieldErr("name", "%q: want lower-case letters, digits, '-', '.' or '_', starting and ending with a letter or digit", d.Name)
	case d.Service == "":
		return fieldErr("service", "must be set")
	case !nameRE.MatchString(d.Service):
		return fieldErr("service", "%q: want lower-case letters, digits, '-', '.' or '_', starting and ending with a letter or digit", d.Service)
	}
	if k.NoMode && d.Mode != "" {
		return fieldErr("mode", "a %s takes no mode (it acts through the controller's own controls: pause, abort)", k.Name)
	}
	if err := d.checkMode(); err != nil {
		return err
	}
	if d.Spec == nil {
		return fieldErr("", "no spec")
	}
	return d.Spec.Validate()
}

// MarshalJSON writes the envelope and the spec fields as one object.
func (d Document) MarshalJSON() ([]byte, error) {
	if d.Spec == nil && d.Raw != nil {
		return d.Raw, nil
	}
	meta, err := json.Marshal(d.Meta)
	if err != nil {
		return nil, err
	}
	if d.Spec == nil {
		return meta, nil
	}
	spec, err := json.Marshal(d.Spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.Ref(), err)
	}
	spec = bytes.TrimSpace(spec)
	if len(spec) <= 2 { // {}
		return meta, nil
	}
	out := make([]byte, 0, len(meta)+len(spec))
	out = append(out, meta[:len(meta)-1]...)
	out = append(out, ',')
	return append(out, spec[1:]...), nil
}

// UnmarshalJSON reads a document written by MarshalJSON. It neither fills
// defaults nor validates (JSON documents come from the store or the control
// plane, which wrote them validated). A document of an unknown kind keeps
// its JSON in Raw and has a nil Spec.
func (d *Document) UnmarshalJSON(data []byte) error {
	*d = Document{}
	if err := json.Unmarshal(data, &d.Meta); err != nil {
		return err
	}
	k, ok := lookupKind(d.Kind)
	if !ok {
		d.Raw = append(json.RawMessage(nil), data...)
		return nil
	}
	spec := k.New()
	if err := json.Unmarshal(data, spec); err != nil {
		return fmt.Errorf("%s: %w", d.Ref(), err)
	}
	d.Spec = spec
	return nil
}

// MarshalYAML writes the envelope and the spec fields as one mapping, the
// envelope first.
func (d Document) MarshalYAML() (any, error) {
	var out yaml.Node
	if err := out.Encode(d.Meta); err != nil {
		return nil, err
	}
	if d.Spec != nil {
		var spec yaml.Node
		if err := spec.Encode(d.Spec); err != nil {
			return nil, err
		}
		if spec.Kind == yaml.MappingNode {
			out.Content = append(out.Content, spec.Content...)
		}
	}
	return &out, nil
}

// Equal reports whether two documents have the same content.
func Equal(a, b *Document) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// CheckSet checks rules that span documents: a kind and name appear once,
// and a service has at most one document of a OnePerService kind.
func CheckSet(docs []Document) error {
	byKey := map[Key]bool{}
	perService := map[Key]string{} // {kind, service} → name
	for i := range docs {
		d := &docs[i]
		if byKey[d.Key()] {
			return fmt.Errorf("%s: given twice", d.Ref())
		}
		byKey[d.Key()] = true
		if k, ok := lookupKind(d.Kind); ok && k.OnePerService {
			sk := Key{d.Kind, d.Service}
			if other, dup := perService[sk]; dup {
				return fmt.Errorf("%s: service %q already has %s %q (one %s per service)", d.Ref(), d.Service, strings.ToLower(d.Kind), other, d.Kind)
			}
			perService[sk] = d.Name
		}
	}
	return nil
}
