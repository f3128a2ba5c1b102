package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/cespare/xxhash/v2"

	"github.com/meshscope/meshscope/collector/spans"
)

// Span blocks (records written since span format 2, see
// docs/format/traces.md): one block per written batch, a table of the
// batch's distinct strings, trace ids and resource attribute sets, then one
// body per span that refers to the table by small varint ids. A record is
// either all version 1 spans or all blocks (its first item's version byte
// says which).

const blockFormatVersion = 2

// writeSpanFormat is the span format new records are written in: 2 (span
// blocks); tests and benchmarks set 1 to write records as older versions
// did.
var writeSpanFormat = 2

// blockEncoder holds the tables of the block being encoded; pooled.
type blockEncoder struct {
	strs     map[string]uint32 // provisional ids
	cnt      []int32           // uses as an attribute value (counted first)
	final    []uint32          // table id + 1 of a provisional id (0: none yet)
	strList  []string          // the table's strings, by table id
	traces   map[spans.TraceID]uint32
	traceIDs []spans.TraceID
	starts   []int64 // earliest start of each trace's spans in the batch
	res      [][]spans.Attr
	shapes   map[string]uint32 // (key id uvarint, type) sequences
	shapeTab []byte            // the shapes as the table stores them
	nShapes  int
	shapeKey []byte
	table    []byte
	bodies   []byte
	bodyOffs []uint32
	order    []int32 // the batch's spans grouped by trace
	runStart int     // first entry of order in the current trace
	tcount   []int32
	batch    []spans.Span
	seen     [512]strSeen
}

// sortByTrace writes a block's bodies grouped by trace (in the order of
// the traces' first spans; a trace's spans in batch order), so that a
// parent is usually a few bodies back and stored as a reference.
var sortByTrace = true

var blockEncoders = sync.Pool{New: func() any {
	return &blockEncoder{strs: make(map[string]uint32), traces: make(map[spans.TraceID]uint32), shapes: make(map[string]uint32)}
}}

// strSeen remembers the id of a string by where its bytes are: the OTLP
// decoder interns a request's strings, so most lookups are answered
// without hashing the string.
type strSeen struct {
	p  *byte
	n  int
	id uint32
}

// id returns the provisional id of s.
func (e *blockEncoder) id(s string) uint32 {
	p := unsafe.StringData(s)
	c := &e.seen[(uintptr(unsafe.Pointer(p))>>3^uintptr(len(s)))%uintptr(len(e.seen))]
	if c.p == p && c.n == len(s) && p != nil {
		return c.id
	}
	id, ok := e.strs[s]
	if !ok {
		id = uint32(len(e.final))
		e.strs[s] = id
		e.final = append(e.final, 0)
		e.cnt = append(e.cnt, 0)
	}
	*c = strSeen{p, len(s), id}
	return id
}

// str returns the table id of s, adding it to the table.
func (e *blockEncoder) str(s string) uint64 {
	id := e.id(s)
	if f := e.final[id]; f != 0 {
		return uint64(f - 1)
	}
	e.strList = append(e.strList, s)
	e.final[id] = uint32(len(e.strList))
	return uint64(len(e.strList) - 1)
}

// countValues counts the string values of an attribute list.
func (e *blockEncoder) countValues(attrs []spans.Attr) {
	for i := range attrs {
		switch attrs[i].Type {
		case spans.TypeInt, spans.TypeFloat, spans.TypeBool:
		default:
			e.cnt[e.id(attrs[i].Str)]++
		}
	}
}

// appendValue appends a string attribute value: inline when the batch
// uses it once (a unique id would only add a table reference), else its
// table id + 1.
func (e *blockEncoder) appendValue(b []byte, s string) []byte {
	if id := e.id(s); e.cnt[id] <= 1 && e.final[id] == 0 {
		b = append(b, 0)
		return appendString(b, s)
	}
	return binary.AppendUvarint(b, e.str(s)+1)
}

// addTrace notes a span's trace and start.
func (e *blockEncoder) addTrace(s *spans.Span) {
	if id, ok := e.traces[s.TraceID]; ok {
		e.starts[id] = min(e.starts[id], s.StartUnixNano)
		return
	}
	e.traces[s.TraceID] = uint32(len(e.traceIDs))
	e.traceIDs = append(e.traceIDs, s.TraceID)
	e.starts = append(e.starts, s.StartUnixNano)
}

// attrsIdentical compares attribute lists exactly (float bits, not ==).
func attrsIdentical(a, b []spans.Attr) bool {
	if len(a) != len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	for i := range a {
		x, y := &a[i], &b[i]
		if x.Key != y.Key || x.Type != y.Type || x.Str != y.Str || x.Int != y.Int || x.Bool != y.Bool ||
			math.Float64bits(x.Float) != math.Float64bits(y.Float) {
			return false
		}
	}
	return true
}

// resource returns the id of a resource attribute set, looking among the
// last few sets (a batch groups its spans by resource).
func (e *blockEncoder) resource(r []spans.Attr) uint64 {
	for i := len(e.res) - 1; i >= 0 && i >= len(e.res)-8; i-- {
		if attrsIdentical(e.res[i], r) {
			return uint64(i)
		}
	}
	e.res = append(e.res, r)
	return uint64(len(e.res) - 1)
}

// shape returns the id of the attribute list's shape: its keys and types.
func (e *blockEncoder) shape(attrs []spans.Attr) uint64 {
	k := e.shapeKey[:0]
	for i := range attrs {
		k = binary.AppendUvarint(k, e.str(attrs[i].Key))
		k = append(k, byte(attrs[i].Type))
	}
	e.shapeKey = k
	if id, ok := e.shapes[string(k)]; ok {
		return uint64(id)
	}
	id := uint32(e.nShapes)
	e.nShapes++
	e.shapes[string(k)] = id
	e.shapeTab = binary.AppendUvarint(e.shapeTab, uint64(len(attrs)))
	e.shapeTab = append(e.shapeTab, k...)
	return uint64(id)
}

// appendAttrs appends an attribute list: its shape, then the values.
func (e *blockEncoder) appendAttrs(b []byte, attrs []spans.Attr) []byte {
	b = binary.AppendUvarint(b, e.shape(attrs))
	for i := range attrs {
		a := &attrs[i]
		b = appendAttrValue(b, a, e.appendValue)
	}
	return b
}

func (e *blockEncoder) appendBody(b []byte, s *spans.Span) []byte {
	tr := e.traces[s.TraceID]
	b = binary.AppendUvarint(b, uint64(tr))
	b = append(b, s.SpanID[:]...)
	if s.ParentSpanID == (spans.SpanID{}) {
		b = append(b, 0)
	} else if off, ok := e.parentBody(s); ok {
		b = append(b, 2)
		b = binary.AppendUvarint(b, uint64(e.bodyOffs[len(e.bodyOffs)-1]-off))
	} else {
		b = append(b, 1)
		b = append(b, s.ParentSpanID[:]...)
	}
	b = binary.AppendUvarint(b, uint64(s.StartUnixNano-e.starts[tr]))
	b = binary.AppendVarint(b, s.EndUnixNano-s.StartUnixNano)
	b = append(b, byte(s.Kind), byte(s.StatusCode))
	b = binary.AppendUvarint(b, e.str(s.Service))
	b = binary.AppendUvarint(b, e.str(s.Name))
	b = binary.AppendUvarint(b, e.str(s.TraceState))
	b = binary.AppendUvarint(b, e.str(s.StatusMessage))
	b = binary.AppendUvarint(b, e.str(s.Scope))
	b = binary.AppendUvarint(b, e.str(s.ScopeVersion))
	b = binary.AppendUvarint(b, e.resource(s.Resource))
	b = e.appendAttrs(b, s.Attrs)
	b = binary.AppendUvarint(b, uint64(len(s.Events)))
	for i := range s.Events {
		ev := &s.Events[i]
		b = binary.AppendVarint(b, ev.TimeUnixNano-s.StartUnixNano)
		b = binary.AppendUvarint(b, e.str(ev.Name))
		b = e.appendAttrs(b, ev.Attrs)
	}
	b = binary.AppendUvarint(b, uint64(len(s.Links)))
	for i := range s.Links {
		l := &s.Links[i]
		b = append(b, l.TraceID[:]...)
		b = append(b, l.SpanID[:]...)
		b = e.appendAttrs(b, l.Attrs)
	}
	return b
}

// parentBody returns the offset in e.bodies of the body of s's parent when
// it is an earlier span of s's trace in this block.
func (e *blockEncoder) parentBody(s *spans.Span) (uint32, bool) {
	if !sortByTrace {
		return 0, false
	}
	for k := len(e.bodyOffs) - 2; k >= e.runStart && k >= len(e.bodyOffs)-65; k-- {
		if e.batch[e.order[k]].SpanID == s.ParentSpanID {
			return e.bodyOffs[k], true
		}
	}
	return 0, false
}

// appendBlock appends the block encoding of batch to b and sets offs[i] and
// lens[i] to the offset in the result and the length of span i's body, and
// order to the batch's indexes in the order of the bodies (the order in
// which a replay reads the spans).
func appendBlock(b []byte, batch []spans.Span, offs, lens []uint32, order []int32) []byte {
	e := blockEncoders.Get().(*blockEncoder)
	defer e.release()
	var base int64
	if len(batch) > 0 {
		base = batch[0].StartUnixNano
	}
	for i := range batch {
		sp := &batch[i]
		e.addTrace(sp)
		e.countValues(sp.Attrs)
		for j := range sp.Events {
			e.countValues(sp.Events[j].Attrs)
		}
		for j := range sp.Links {
			e.countValues(sp.Links[j].Attrs)
		}
	}
	e.batch = batch
	e.order = e.order[:0]
	if sortByTrace {
		// A counting sort by trace number (numbers follow first appearance).
		cnt := append(e.tcount[:0], make([]int32, len(e.traceIDs)+1)...)
		for i := range batch {
			cnt[e.traces[batch[i].TraceID]+1]++
		}
		for i := 1; i < len(cnt); i++ {
			cnt[i] += cnt[i-1]
		}
		e.order = append(e.order, make([]int32, len(batch))...)
		for i := range batch {
			tr := e.traces[batch[i].TraceID]
			e.order[cnt[tr]] = int32(i)
			cnt[tr]++
		}
		e.tcount = cnt
	} else {
		for i := range batch {
			e.order = append(e.order, int32(i))
		}
	}
	e.bodies = e.bodies[:0]
	e.bodyOffs = e.bodyOffs[:0]
	e.runStart = 0
	for k, i := range e.order {
		if k > 0 && batch[i].TraceID != batch[e.order[k-1]].TraceID {
			e.runStart = k
		}
		e.bodyOffs = append(e.bodyOffs, uint32(len(e.bodies)))
		e.bodies = e.appendBody(e.bodies, &batch[i])
	}
	e.batch = nil
	// The table: the resource sets' strings are interned first.
	res := e.table[:0]
	res = binary.AppendUvarint(res, uint64(len(e.res)))
	for _, r := range e.res {
		res = e.appendAttrs(res, r)
	}
	t := binary.AppendVarint(nil, base)
	t = binary.AppendUvarint(t, uint64(len(e.strList)))
	for _, s := range e.strList {
		t = binary.AppendUvarint(t, uint64(len(s)))
	}
	for _, s := range e.strList {
		t = append(t, s...)
	}
	t = binary.AppendUvarint(t, uint64(len(e.traceIDs)))
	for i := range e.traceIDs {
		t = append(t, e.traceIDs[i][:]...)
	}
	for _, st := range e.starts {
		t = binary.AppendVarint(t, st-base)
	}
	t = binary.AppendUvarint(t, uint64(e.nShapes))
	t = append(t, e.shapeTab...)
	t = append(t, res...)
	e.table = res
	spanCount := binary.AppendUvarint(nil, uint64(len(batch)))
	tableLen := binary.AppendUvarint(nil, uint64(len(t)))
	size := len(spanCount) + len(tableLen) + len(t) + len(e.bodies)
	b = append(b, blockFormatVersion)
	b = binary.AppendUvarint(b, uint64(size))
	b = append(b, spanCount...)
	b = append(b, tableLen...)
	b = append(b, t...)
	start := uint32(len(b))
	copy(order, e.order)
	for k, i := range e.order {
		end := uint32(len(e.bodies))
		if k+1 < len(e.order) {
			end = e.bodyOffs[k+1]
		}
		offs[i], lens[i] = start+e.bodyOffs[k], end-e.bodyOffs[k]
	}
	return append(b, e.bodies...)
}

func (e *blockEncoder) release() {
	clear(e.strs)
	clear(e.traces)
	clear(e.shapes)
	e.shapeTab, e.nShapes = e.shapeTab[:0], 0
	clear(e.strList)
	clear(e.res)
	e.cnt, e.final = e.cnt[:0], e.final[:0]
	clear(e.seen[:])
	e.strList, e.traceIDs, e.starts, e.res = e.strList[:0], e.traceIDs[:0], e.starts[:0], e.res[:0]
	if cap(e.bodies) > maxPooledPayload {
		e.bodies = nil
	}
	if len(e.strs) == 0 && cap(e.strList) > 1<<16 {
		// An unusually large batch: let its tables go.
		e.strs, e.strList = make(map[string]uint32), nil
		e.traces, e.traceIDs = make(map[spans.TraceID]uint32), nil
	}
	blockEncoders.Put(e)
}

// blockTable is the decoded table of one block.
type blockTable struct {
	base   int64
	strs   []string
	hashes []uint64 // xxhash64 of strs, filled by withHashes
	traces []byte   // 16 bytes per trace id
	starts []int64  // earliest start of each trace's spans
	shapes [][]shapeAttr
	res    [][]spans.Attr
	size   int64 // about the bytes it holds (for the table cache)
}

// shapeAttr is one key and type of an attribute list's shape.
type shapeAttr struct {
	key int
	typ spans.ValueType
}

var errBadRef = errors.New("span block: reference outside the table")

func (t *blockTable) str(d *decoder) string {
	i := d.uvarint()
	if d.err != nil {
		return ""
	}
	if i >= uint64(len(t.strs)) {
		d.fail(errBadRef)
		return ""
	}
	return t.strs[i]
}

func (t *blockTable) strRef(d *decoder) int {
	i := d.uvarint()
	if d.err == nil && i >= uint64(len(t.strs)) {
		d.fail(errBadRef)
	}
	if d.err != nil {
		return -1
	}
	return int(i)
}

// attrs decodes an attribute list; with hashes it appends the pair hashes
// instead (as appendAttrHashes computes them) and returns nil.
func (t *blockTable) attrs(d *decoder, hashes *[]uint64) []spans.Attr {
	i := d.uvarint()
	if d.err == nil && i >= uint64(len(t.shapes)) {
		d.fail(errBadRef)
	}
	if d.err != nil {
		return nil
	}
	shape := t.shapes[i]
	if len(shape) > len(d.b) { // every value takes a byte or more
		d.fail(errShort)
		return nil
	}
	var out []spans.Attr
	if len(shape) > 0 && hashes == nil {
		out = make([]spans.Attr, len(shape))
	}
	for i, sa := range shape {
		a := spans.Attr{Type: sa.typ}
		val := -1
		var inline []byte
		if !d.scalar(&a) {
			// 0 and the string inline, or table id + 1
			if ref := d.uvarint(); ref == 0 {
				inline = d.bytes(d.count(1))
			} else if ref-1 >= uint64(len(t.strs)) {
				d.fail(errBadRef)
			} else {
				val = int(ref - 1)
			}
		}
		if d.err != nil {
			return nil
		}
		if hashes != nil {
			var v uint64
			switch {
			case a.Type == spans.TypeString && val >= 0:
				v = t.hashes[val]
			case a.Type == spans.TypeString:
				v = xxhash.Sum64(inline)
			default:
				a.Str = t.value(val, inline)
				v = attrValueHash(&a)
			}
			*hashes = append(*hashes, mixHash(t.hashes[sa.key], v))
			continue
		}
		a.Key = t.strs[sa.key]
		a.Str = t.value(val, inline)
		out[i] = a
	}
	return out
}

// value returns a string value: table string val, or inline when val < 0
// (nil inline: a value of no string type).
func (t *blockTable) value(val int, inline []byte) string {
	if val >= 0 {
		return t.strs[val]
	}
	return string(inline)
}

// blockHeader reads the block at the start of b: its span count, table
// bytes and bodies (the rest of the block); rest is what follows the block.
func blockHeader(b []byte) (n int, table, bodies, rest []byte, err error) {
	d := decoder{b: b}
	if v := d.u8(); v != blockFormatVersion && d.err == nil {
		return 0, nil, nil, nil, fmt.Errorf("span block: unknown format version %d", v)
	}
	block := d.bytes(d.count(1))
	if d.err != nil {
		return 0, nil, nil, nil, d.err
	}
	rest = d.b
	d.b = block
	n = d.count(20) // a body takes at least 20 bytes
	table = d.bytes(d.count(1))
	if d.err != nil {
		return 0, nil, nil, nil, d.err
	}
	return n, table, d.b, rest, nil
}

func parseBlockTable(b []byte) (*blockTable, error) {
	d := decoder{b: b}
	t := &blockTable{base: d.varint()}
	n := d.count(1)
	lens := make([]int, 0, n)
	total := 0
	for range n {
		l := d.count(1)
		total += l
		lens = append(lens, l)
	}
	if d.err == nil && total > len(d.b) {
		d.fail(errShort)
	}
	all := string(d.bytes(total))
	if d.err != nil {
		return nil, d.err
	}
	t.strs = make([]string, n)
	for i, l := range lens {
		t.strs[i], all = all[:l], all[l:]
	}
	nt := d.count(17)
	t.traces = d.bytes(16 * nt)
	if d.err == nil {
		t.starts = make([]int64, nt)
		for i := range t.starts {
			t.starts[i] = t.base + d.varint()
		}
	}
	t.shapes = make([][]shapeAttr, d.count(1))
	for i := range t.shapes {
		n := d.count(2)
		if n > 0 {
			t.shapes[i] = make([]shapeAttr, n)
		}
		for j := range n {
			k := t.strRef(&d)
			t.shapes[i][j] = shapeAttr{k, spans.ValueType(d.u8())}
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	nres := d.count(1)
	if d.err != nil {
		return nil, d.err
	}
	t.res = make([][]spans.Attr, nres)
	for i := range t.res {
		t.res[i] = t.attrs(&d, nil)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("span block: %d stray bytes after the table", len(d.b))
	}
	t.size = 256 + 4*int64(len(b))
	return t, nil
}

// withHashes fills t.hashes (once).
func (t *blockTable) withHashes() {
	if t.hashes != nil {
		return
	}
	t.hashes = make([]uint64, len(t.strs))
	for i, s := range t.strs {
		t.hashes[i] = xxhash.Sum64String(s)
	}
}

// body decodes the span body at the start of d.b into s; with hashes it
// appends the span's attribute pair hashes instead (s is then partly
// filled). Both ways check the same things.
//
// blk is the block's bodies and at the offset of this body in blk: a
// parent stored as a reference is read from the earlier body it names.
func (t *blockTable) body(d *decoder, s *spans.Span, hashes *[]uint64, blk []byte, at int) {
	tr := d.uvarint()
	if d.err == nil && tr >= uint64(len(t.traces)/16) {
		d.fail(errBadRef)
	}
	var traceStart int64
	if d.err == nil {
		copy(s.TraceID[:], t.traces[16*tr:])
		traceStart = t.starts[tr]
	}
	copy(s.SpanID[:], d.bytes(8))
	switch d.u8() {
	case 0:
		s.ParentSpanID = spans.SpanID{}
	case 1:
		copy(s.ParentSpanID[:], d.bytes(8))
	case 2:
		dist := d.uvarint()
		if d.err != nil {
			break
		}
		if dist == 0 || dist > uint64(at) || at > len(blk) {
			d.fail(errors.New("span block: parent reference outside the block"))
			break
		}
		p := at - int(dist)
		_, k := binary.Uvarint(blk[p:])
		if k <= 0 || p+k+8 > at {
			d.fail(errors.New("span block: parent reference to no span"))
			break
		}
		copy(s.ParentSpanID[:], blk[p+k:])
	default:
		d.fail(errors.New("span block: bad parent flag"))
	}
	s.StartUnixNano = traceStart + int64(d.uvarint())
	s.EndUnixNano = s.StartUnixNano + d.varint()
	s.Kind = spans.Kind(d.u8())
	s.StatusCode = spans.StatusCode(d.u8())
	s.Service = t.str(d)
	s.Name = t.str(d)
	s.TraceState = t.str(d)
	s.StatusMessage = t.str(d)
	s.Scope = t.str(d)
	s.ScopeVersion = t.str(d)
	r := d.uvarint()
	if d.err == nil && r >= uint64(len(t.res)) {
		d.fail(errBadRef)
	}
	if d.err != nil {
		return
	}
	res := t.res[r]
	if hashes != nil {
		*hashes = t.attrsHashes(d, *hashes, res)
	} else {
		s.Attrs = t.attrs(d, nil)
		s.Resource = nil
		if len(res) > 0 {
			s.Resource = append([]spans.Attr(nil), res...)
		}
	}
	if n := d.count(3); n > 0 {
		s.Events = nil
		if hashes == nil {
			s.Events = make([]spans.Event, n)
		}
		for i := range n {
			var e spans.Event
			e.TimeUnixNano = s.StartUnixNano + d.varint()
			e.Name = t.str(d)
			e.Attrs = t.extraAttrs(d, hashes != nil)
			if d.err != nil {
				return
			}
			if hashes == nil {
				s.Events[i] = e
			}
		}
	} else {
		s.Events = nil
	}
	if n := d.count(25); n > 0 {
		s.Links = nil
		if hashes == nil {
			s.Links = make([]spans.Link, n)
		}
		for i := range n {
			var l spans.Link
			copy(l.TraceID[:], d.bytes(16))
			copy(l.SpanID[:], d.bytes(8))
			l.Attrs = t.extraAttrs(d, hashes != nil)
			if d.err != nil {
				return
			}
			if hashes == nil {
				s.Links[i] = l
			}
		}
	} else {
		s.Links = nil
	}
}

// extraAttrs decodes the attributes of an event or a link, or only reads
// past them (nil) while the span's own attribute hashes are computed.
func (t *blockTable) extraAttrs(d *decoder, hashing bool) []spans.Attr {
	if hashing {
		var discard []uint64
		t.attrs(d, &discard)
		return nil
	}
	return t.attrs(d, nil)
}

// attrsHashes appends the hashes of the span attributes read from d, then
// of the resource set res (appendAttrHashes's order).
func (t *blockTable) attrsHashes(d *decoder, dst []uint64, res []spans.Attr) []uint64 {
	t.attrs(d, &dst)
	if d.err != nil {
		return dst
	}
	for i := range res {
		dst = append(dst, mixHash(xxhash.Sum64String(res[i].Key), attrValueHash(&res[i])))
	}
	return dst
}

// decodeBody decodes one span body of block table t and returns the rest.
func decodeBody(b []byte, t *blockTable, s *spans.Span, blk []byte, at int) ([]byte, error) {
	d := decoder{b: b}
	t.body(&d, s, nil, blk, at)
	if d.err != nil {
		return nil, d.err
	}
	return d.b, nil
}

// bodyAttrHashes appends the attribute pair hashes of the span body at the
// start of b (t must have its hashes) and returns the rest of b; it fails
// where decodeBody fails.
func bodyAttrHashes(dst []uint64, b []byte, t *blockTable, blk []byte, at int) ([]uint64, []byte, error) {
	d := decoder{b: b}
	var s spans.Span
	t.body(&d, &s, &dst, blk, at)
	if d.err != nil {
		return dst, nil, d.err
	}
	return dst, d.b, nil
}

// recordIsBlocks says whether a record's raw body (after its span count)
// holds blocks rather than version 1 spans.
func recordIsBlocks(items []byte) bool {
	return len(items) > 0 && items[0] == blockFormatVersion
}

// decodeRecordSpan decodes the span whose encoding is raw[off:off+length]
// in a record's raw body: a version 1 span on its own, or a block body with
// the table of its block.
//
// tables, when set, returns the parsed table of the block at pos (parsing
// tb), so that a caller can keep tables across reads.
func decodeRecordSpan(raw []byte, off, length uint32, s *spans.Span, tables func(pos int, tb []byte) (*blockTable, error)) error {
	if uint64(off)+uint64(length) > uint64(len(raw)) {
		return fmt.Errorf("span at %d+%d outside record of %d bytes", off, length, len(raw))
	}
	_, k := binary.Uvarint(raw)
	if k <= 0 {
		return errors.New("bad span count")
	}
	if !recordIsBlocks(raw[k:]) {
		_, err := decodeSpan(raw[off:off+length], s)
		return err
	}
	pos := k
	for pos < len(raw) {
		_, tb, bodies, rest, err := blockHeader(raw[pos:])
		if err != nil {
			return err
		}
		end := len(raw) - len(rest)
		if int(off) < end {
			if int(off) < end-len(bodies) || int(off+length) > end {
				return fmt.Errorf("span at %d+%d is not in a block body", off, length)
			}
			var t *blockTable
			if tables != nil {
				t, err = tables(pos, tb)
			} else {
				t, err = parseBlockTable(tb)
			}
			if err != nil {
				return err
			}
			blk := raw[end-len(bodies) : end]
			_, err = decodeBody(raw[off:off+length], t, s, blk, int(off)-(end-len(bodies)))
			return err
		}
		pos = end
	}
	return fmt.Errorf("span at %d+%d after the last block", off, length)
}
