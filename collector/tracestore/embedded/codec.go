package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cespare/xxhash/v2"

	"github.com/meshscope/meshscope/collector/spans"
)

// The span record encoding (see docs/format/traces.md): fixed-size ids and
// times, then varint-prefixed strings and typed attributes.

const spanFormatVersion = 1

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendAttrs(b []byte, attrs []spans.Attr) []byte {
	b = binary.AppendUvarint(b, uint64(len(attrs)))
	for i := range attrs {
		a := &attrs[i]
		b = appendString(b, a.Key)
		b = append(b, byte(a.Type))
		b = appendAttrValue(b, a, appendString)
	}
	return b
}

// appendAttrValue appends a's value: ints as varints, floats as 8 bytes,
// bools as one byte; strings, bytes and unknown types keep Str, appended by
// appendStr.
func appendAttrValue(b []byte, a *spans.Attr, appendStr func([]byte, string) []byte) []byte {
	switch a.Type {
	case spans.TypeInt:
		return binary.AppendVarint(b, a.Int)
	case spans.TypeFloat:
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(a.Float))
	case spans.TypeBool:
		if a.Bool {
			return append(b, 1)
		}
		return append(b, 0)
	default:
		return appendStr(b, a.Str)
	}
}

// appendSpan appends the encoding of s to b.
func appendSpan(b []byte, s *spans.Span) []byte {
	b = append(b, spanFormatVersion)
	b = append(b, s.TraceID[:]...)
	b = append(b, s.SpanID[:]...)
	b = append(b, s.ParentSpanID[:]...)
	b = binary.LittleEndian.AppendUint64(b, uint64(s.StartUnixNano))
	b = binary.LittleEndian.AppendUint64(b, uint64(s.EndUnixNano))
	b = append(b, byte(s.Kind), byte(s.StatusCode))
	b = appendString(b, s.Service)
	b = appendString(b, s.Name)
	b = appendString(b, s.TraceState)
	b = appendString(b, s.StatusMessage)
	b = appendString(b, s.Scope)
	b = appendString(b, s.ScopeVersion)
	b = appendAttrs(b, s.Attrs)
	b = appendAttrs(b, s.Resource)
	b = binary.AppendUvarint(b, uint64(len(s.Events)))
	for _, e := range s.Events {
		b = binary.LittleEndian.AppendUint64(b, uint64(e.TimeUnixNano))
		b = appendString(b, e.Name)
		b = appendAttrs(b, e.Attrs)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Links)))
	for _, l := range s.Links {
		b = append(b, l.TraceID[:]...)
		b = append(b, l.SpanID[:]...)
		b = appendAttrs(b, l.Attrs)
	}
	return b
}

var errShort = errors.New("truncated span record")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil || n < 0 || len(d.b) < n {
		d.fail(errShort)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() byte {
	v := d.bytes(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (d *decoder) u64() uint64 {
	v := d.bytes(8)
	if v == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(v)
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a length that must fit in what is left (each element takes at
// least min bytes), so corrupt input cannot make us allocate wildly.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if d.err != nil {
		return 0
	}
	if n > uint64(len(d.b)/minSize) {
		d.fail(fmt.Errorf("span record: count %d exceeds remaining %d bytes", n, len(d.b)))
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	n := d.count(1)
	return string(d.bytes(n))
}

func (d *decoder) attrs() []spans.Attr {
	n := d.count(3)
	if n == 0 {
		return nil
	}
	out := make([]spans.Attr, n)
	for i := range out {
		a := &out[i]
		a.Key = d.str()
		a.Type = spans.ValueType(d.u8())
		if !d.scalar(a) {
			a.Str = d.str()
		}
	}
	return out
}

// scalar reads the value of a non-string attribute of type a.Type into a;
// false (nothing read) when a.Type is a string, whose coding differs
// between the record formats.
func (d *decoder) scalar(a *spans.Attr) bool {
	switch a.Type {
	case spans.TypeInt:
		a.Int = d.varint()
	case spans.TypeFloat:
		a.Float = math.Float64frombits(d.u64())
	case spans.TypeBool:
		a.Bool = d.u8() == 1
	default:
		return false
	}
	return true
}

// skipStr skips a string without allocating it.
func (d *decoder) skipStr() {
	d.bytes(d.count(1))
}

// attrHashes appends the pair hashes of an attribute list (as
// appendAttrHashes computes them) without building the attributes: strings
// are hashed in place, so reading a record for its hashes allocates
// nothing for the common value types.
func (d *decoder) attrHashes(dst []uint64) []uint64 {
	n := d.count(3)
	for range n {
		key := d.bytes(d.count(1))
		a := spans.Attr{Type: spans.ValueType(d.u8())}
		var v uint64
		switch a.Type {
		case spans.TypeInt:
			a.Int = d.varint()
			v = attrValueHash(&a)
		case spans.TypeFloat:
			a.Float = math.Float64frombits(d.u64())
			v = attrValueHash(&a)
		case spans.TypeBool:
			a.Bool = d.u8() == 1
			v = attrValueHash(&a)
		case spans.TypeString:
			v = xxhash.Sum64(d.bytes(d.count(1)))
		default:
			a.Str = d.str()
			v = attrValueHash(&a)
		}
		if d.err != nil {
			return dst
		}
		dst = append(dst, mixHash(xxhash.Sum64(key), v))
	}
	return dst
}

// spanAttrHashes appends the attribute pair hashes of the span record at
// the start of b to dst (the hashes appendAttrHashes takes from the decoded
// span, in the same order) and returns the rest of b. It checks the record
// as decodeSpan does, failing on the same input.
func spanAttrHashes(dst []uint64, b []byte) ([]uint64, []byte, error) {
	d := decoder{b: b}
	if v := d.u8(); v != spanFormatVersion && d.err == nil {
		return dst, nil, fmt.Errorf("span record: unknown format version %d", v)
	}
	d.bytes(16 + 8 + 8 + 8 + 8 + 2) // ids, times, kind, status
	for range 6 {                   // service, name, trace state, status message, scope, scope version
		d.skipStr()
	}
	dst = d.attrHashes(dst)
	dst = d.attrHashes(dst)
	for range d.count(10) {
		d.u64()
		d.skipStr()
		d.skipAttrs()
	}
	for range d.count(25) {
		d.bytes(16 + 8)
		d.skipAttrs()
	}
	if d.err != nil {
		return dst, nil, d.err
	}
	return dst, d.b, nil
}

// skipAttrs skips an attribute list.
func (d *decoder) skipAttrs() {
	for range d.count(3) {
		d.skipStr()
		switch spans.ValueType(d.u8()) {
		case spans.TypeInt:
			d.varint()
		case spans.TypeFloat:
			d.u64()
		case spans.TypeBool:
			d.u8()
		default:
			d.skipStr()
		}
	}
}

// decodeSpan decodes one span record and returns the rest of b.
func decodeSpan(b []byte, s *spans.Span) ([]byte, error) {
	d := decoder{b: b}
	if v := d.u8(); v != spanFormatVersion && d.err == nil {
		return nil, fmt.Errorf("span record: unknown format version %d", v)
	}
	copy(s.TraceID[:], d.bytes(16))
	copy(s.SpanID[:], d.bytes(8))
	copy(s.ParentSpanID[:], d.bytes(8))
	s.StartUnixNano = int64(d.u64())
	s.EndUnixNano = int64(d.u64())
	s.Kind = spans.Kind(d.u8())
	s.StatusCode = spans.StatusCode(d.u8())
	s.Service = d.str()
	s.Name = d.str()
	s.TraceState = d.str()
	s.StatusMessage = d.str()
	s.Scope = d.str()
	s.ScopeVersion = d.str()
	s.Attrs = d.attrs()
	s.Resource = d.attrs()
	if n := d.count(10); n > 0 {
		s.Events = make([]spans.Event, n)
		for i := range s.Events {
			e := &s.Events[i]
			e.TimeUnixNano = int64(d.u64())
			e.Name = d.str()
			e.Attrs = d.attrs()
		}
	} else {
		s.Events = nil
	}
	if n := d.count(25); n > 0 {
		s.Links = make([]spans.Link, n)
		for i := range s.Links {
			l := &s.Links[i]
			copy(l.TraceID[:], d.bytes(16))
			copy(l.SpanID[:], d.bytes(8))
			l.Attrs = d.attrs()
		}
	} else {
		s.Links = nil
	}
	if d.err != nil {
		return nil, d.err
	}
	return d.b, nil
}
