package chdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/meshscope/meshscope/collector/tracestore/clickhouse/internal/chsql"
)

// chType is a parsed ClickHouse data type.
type chType struct {
	name  string    // base name: String, FixedString, UInt8, DateTime64, Array, Map, ...
	n     int       // FixedString length, DateTime64 precision
	elems []*chType // Array/Nullable/LowCardinality: 1; Map: 2; Tuple: n
}

// parseType parses a ClickHouse type name such as
// "Map(LowCardinality(String), String)" or "DateTime64(9, 'UTC')".
func parseType(s string) (*chType, error) {
	t, rest, err := parseTypePrefix(strings.TrimSpace(s))
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(rest) != "" {
		return nil, fmt.Errorf("type %q: trailing %q", s, rest)
	}
	return t, nil
}

func parseTypePrefix(s string) (*chType, string, error) {
	i := strings.IndexAny(s, "(,)")
	if i < 0 {
		return &chType{name: strings.TrimSpace(s)}, "", nil
	}
	t := &chType{name: strings.TrimSpace(s[:i])}
	if s[i] != '(' {
		return t, s[i:], nil
	}
	s = s[i+1:]
	switch t.name {
	case "FixedString", "DateTime64", "Decimal", "DateTime", "Enum8", "Enum16":
		// Parameters are literals: read up to the matching ')'.
		j := strings.IndexByte(s, ')')
		if j < 0 {
			return nil, "", fmt.Errorf("type %s: missing ')'", t.name)
		}
		args := strings.Split(s[:j], ",")
		if t.name == "FixedString" || t.name == "DateTime64" {
			n, err := strconv.Atoi(strings.TrimSpace(args[0]))
			if err != nil {
				return nil, "", fmt.Errorf("type %s: %w", t.name, err)
			}
			t.n = n
		}
		return t, s[j+1:], nil
	}
	for {
		s = strings.TrimSpace(s)
		// Named tuple elements ("name Type") are not used by the store.
		e, rest, err := parseTypePrefix(s)
		if err != nil {
			return nil, "", err
		}
		t.elems = append(t.elems, e)
		rest = strings.TrimSpace(rest)
		if rest == "" {
			return nil, "", fmt.Errorf("type %s: missing ')'", t.name)
		}
		if rest[0] == ')' {
			return t, rest[1:], nil
		}
		if rest[0] != ',' {
			return nil, "", fmt.Errorf("type %s: unexpected %q", t.name, rest)
		}
		s = rest[1:]
	}
}

// unwrap strips LowCardinality, which RowBinary does not encode.
func (t *chType) unwrap() *chType {
	for t.name == "LowCardinality" {
		t = t.elems[0]
	}
	return t
}

// ---- encoding (inserts) ----

type column struct {
	name string
	typ  *chType
}

// columns caches the column types of the tables the store inserts into.
type columns struct {
	mu     sync.Mutex
	q      func(query string, params map[string]string, format string) ([]byte, error)
	tables map[string][]column
}

func (c *columns) reset() {
	c.mu.Lock()
	c.tables = nil
	c.mu.Unlock()
}

var insertRe = regexp.MustCompile(`(?is)^\s*INSERT\s+INTO\s+([A-Za-z0-9_.` + "`" + `]+)\s*\(([^)]*)\)\s*$`)

// lookup returns the types of cols in table (db.table).
func (c *columns) lookup(table string, cols []string) ([]*chType, error) {
	c.mu.Lock()
	all, ok := c.tables[table]
	c.mu.Unlock()
	if !ok {
		db, tbl, found := strings.Cut(table, ".")
		if !found {
			return nil, fmt.Errorf("insert into %q: table must be qualified with its database", table)
		}
		out, err := c.q("SELECT name, type FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position",
			map[string]string{"db": db, "t": tbl}, "RowBinaryWithNamesAndTypes")
		if err != nil {
			return nil, err
		}
		rows, err := NewRows(out)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var name, typ string
			if err := rows.Scan(&name, &typ); err != nil {
				return nil, err
			}
			t, err := parseType(typ)
			if err != nil {
				return nil, err
			}
			all = append(all, column{name, t})
		}
		c.mu.Lock()
		if c.tables == nil {
			c.tables = map[string][]column{}
		}
		c.tables[table] = all
		c.mu.Unlock()
	}
	types := make([]*chType, len(cols))
	for i, name := range cols {
		for _, col := range all {
			if col.name == name {
				types[i] = col.typ
			}
		}
		if types[i] == nil {
			return nil, fmt.Errorf("insert into %s: no column %q", table, name)
		}
	}
	return types, nil
}

// encodeInsert encodes rows in RowBinary for the columns of the insert statement.
func (c *columns) encodeInsert(insert string, rows [][]any) ([]byte, error) {
	m := insertRe.FindStringSubmatch(insert)
	if m == nil {
		return nil, fmt.Errorf("insert statement %q: want INSERT INTO db.table (col, ...)", insert)
	}
	table := strings.ReplaceAll(m[1], "`", "")
	var cols []string
	for _, f := range strings.Split(m[2], ",") {
		cols = append(cols, strings.Trim(strings.TrimSpace(f), "`"))
	}
	types, err := c.lookup(table, cols)
	if err != nil {
		return nil, err
	}
	var buf []byte
	for r, row := range rows {
		if len(row) != len(types) {
			return nil, fmt.Errorf("row %d has %d values for %d columns", r, len(row), len(types))
		}
		for i, v := range row {
			if buf, err = encodeValue(buf, types[i], v); err != nil {
				return nil, fmt.Errorf("row %d column %s: %w", r, cols[i], err)
			}
		}
	}
	return buf, nil
}

func encodeValue(buf []byte, t *chType, v any) ([]byte, error) {
	t = t.unwrap()
	switch t.name {
	case "String":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%T for String", v)
		}
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		return append(buf, s...), nil
	case "FixedString":
		s, ok := v.(string)
		if !ok || len(s) > t.n {
			return nil, fmt.Errorf("%T %q for FixedString(%d)", v, v, t.n)
		}
		buf = append(buf, s...)
		for range t.n - len(s) {
			buf = append(buf, 0)
		}
		return buf, nil
	case "UInt8", "Bool", "Int8":
		n, err := asInt(v)
		return append(buf, byte(n)), err
	case "UInt16", "Int16":
		n, err := asInt(v)
		return binary.LittleEndian.AppendUint16(buf, uint16(n)), err
	case "UInt32", "Int32":
		n, err := asInt(v)
		return binary.LittleEndian.AppendUint32(buf, uint32(n)), err
	case "UInt64", "Int64":
		n, err := asInt(v)
		return binary.LittleEndian.AppendUint64(buf, uint64(n)), err
	case "Float64":
		f, ok := v.(float64)
		if !ok {
			return nil, fmt.Errorf("%T for Float64", v)
		}
		return binary.LittleEndian.AppendUint64(buf, math.Float64bits(f)), nil
	case "DateTime64":
		tm, ok := v.(time.Time)
		if !ok {
			return nil, fmt.Errorf("%T for DateTime64", v)
		}
		ticks := tm.UnixNano()
		for range 9 - t.n {
			ticks /= 10
		}
		return binary.LittleEndian.AppendUint64(buf, uint64(ticks)), nil
	case "DateTime":
		tm, ok := v.(time.Time)
		if !ok {
			return nil, fmt.Errorf("%T for DateTime", v)
		}
		return binary.LittleEndian.AppendUint32(buf, uint32(tm.Unix())), nil
	case "Map":
		var m *chsql.Map
		switch x := v.(type) {
		case *chsql.Map:
			m = x
		case chsql.Map:
			m = &x
		default:
			return nil, fmt.Errorf("%T for Map", v)
		}
		if m == nil {
			m = &chsql.Map{}
		}
		buf = binary.AppendUvarint(buf, uint64(len(m.Keys)))
		var err error
		for i := range m.Keys {
			if buf, err = encodeValue(buf, t.elems[0], m.Keys[i]); err != nil {
				return nil, err
			}
			if buf, err = encodeValue(buf, t.elems[1], m.Values[i]); err != nil {
				return nil, err
			}
		}
		return buf, nil
	case "Array":
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Slice {
			return nil, fmt.Errorf("%T for Array", v)
		}
		buf = binary.AppendUvarint(buf, uint64(rv.Len()))
		var err error
		for i := range rv.Len() {
			if buf, err = encodeValue(buf, t.elems[0], rv.Index(i).Interface()); err != nil {
				return nil, err
			}
		}
		return buf, nil
	}
	return nil, fmt.Errorf("type %s is not supported by the test codec", t.name)
}

func asInt(v any) (int64, error) {
	switch x := v.(type) {
	case uint8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case uint64:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case int:
		return int64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	}
	return 0, fmt.Errorf("%T is not an integer", v)
}

// ---- decoding (query results) ----

// Rows reads RowBinaryWithNamesAndTypes output.
type Rows struct {
	names []string
	types []*chType
	data  []byte
	row   []any
	err   error
}

// NewRows parses the header of RowBinaryWithNamesAndTypes output. Empty
// output (a statement without a result) has no rows.
func NewRows(out []byte) (*Rows, error) {
	r := &Rows{data: out}
	if len(out) == 0 {
		return r, nil
	}
	n, err := r.count()
	if err != nil {
		return nil, err
	}
	for range n {
		s, err := r.str()
		if err != nil {
			return nil, err
		}
		r.names = append(r.names, s)
	}
	for range n {
		s, err := r.str()
		if err != nil {
			return nil, err
		}
		t, err := parseType(s)
		if err != nil {
			return nil, err
		}
		r.types = append(r.types, t)
	}
	return r, nil
}

var errShort = errors.New("RowBinary: truncated data")

func (r *Rows) uvarint() (uint64, error) {
	v, n := binary.Uvarint(r.data)
	if n <= 0 {
		return 0, errShort
	}
	r.data = r.data[n:]
	return v, nil
}

// count reads an element count; every element the store reads takes at
// least one byte, so a count beyond the remaining data is corrupt.
func (r *Rows) count() (uint64, error) {
	n, err := r.uvarint()
	if err == nil && n > uint64(len(r.data)) {
		return 0, errShort
	}
	return n, err
}

func (r *Rows) take(n int) ([]byte, error) {
	if n < 0 || len(r.data) < n {
		return nil, errShort
	}
	b := r.data[:n]
	r.data = r.data[n:]
	return b, nil
}

func (r *Rows) str() (string, error) {
	n, err := r.uvarint()
	if err != nil {
		return "", err
	}
	b, err := r.take(int(n))
	return string(b), err
}

func (r *Rows) decode(t *chType) (any, error) {
	t = t.unwrap()
	fixed := func(n int) ([]byte, error) { return r.take(n) }
	switch t.name {
	case "String":
		return r.str()
	case "FixedString":
		b, err := fixed(t.n)
		return string(b), err
	case "UInt8", "Bool":
		b, err := fixed(1)
		if err != nil {
			return nil, err
		}
		return b[0], nil
	case "Int8":
		b, err := fixed(1)
		if err != nil {
			return nil, err
		}
		return int64(int8(b[0])), nil
	case "UInt16":
		b, err := fixed(2)
		if err != nil {
			return nil, err
		}
		return uint64(binary.LittleEndian.Uint16(b)), nil
	case "Int16":
		b, err := fixed(2)
		if err != nil {
			return nil, err
		}
		return int64(int16(binary.LittleEndian.Uint16(b))), nil
	case "UInt32":
		b, err := fixed(4)
		if err != nil {
			return nil, err
		}
		return uint64(binary.LittleEndian.Uint32(b)), nil
	case "Int32":
		b, err := fixed(4)
		if err != nil {
			return nil, err
		}
		return int64(int32(binary.LittleEndian.Uint32(b))), nil
	case "UInt64":
		b, err := fixed(8)
		if err != nil {
			return nil, err
		}
		return binary.LittleEndian.Uint64(b), nil
	case "Int64":
		b, err := fixed(8)
		if err != nil {
			return nil, err
		}
		return int64(binary.LittleEndian.Uint64(b)), nil
	case "Float64":
		b, err := fixed(8)
		if err != nil {
			return nil, err
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
	case "DateTime":
		b, err := fixed(4)
		if err != nil {
			return nil, err
		}
		return time.Unix(int64(binary.LittleEndian.Uint32(b)), 0), nil
	case "DateTime64":
		b, err := fixed(8)
		if err != nil {
			return nil, err
		}
		ticks := int64(binary.LittleEndian.Uint64(b))
		for range 9 - t.n {
			ticks *= 10
		}
		return time.Unix(0, ticks), nil
	case "Nullable":
		b, err := fixed(1)
		if err != nil {
			return nil, err
		}
		if b[0] == 1 {
			return nil, nil
		}
		return r.decode(t.elems[0])
	case "Array":
		n, err := r.count()
		if err != nil {
			return nil, err
		}
		out := make([]any, 0, min(n, 1<<16))
		for range n {
			v, err := r.decode(t.elems[0])
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case "Map":
		n, err := r.count()
		if err != nil {
			return nil, err
		}
		m := &chsql.Map{}
		for range n {
			k, err := r.decode(t.elems[0])
			if err != nil {
				return nil, err
			}
			v, err := r.decode(t.elems[1])
			if err != nil {
				return nil, err
			}
			m.Put(k, v)
		}
		return m, nil
	case "Tuple":
		out := make([]any, 0, len(t.elems))
		for _, e := range t.elems {
			v, err := r.decode(e)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("type %s is not supported by the test codec", t.name)
}

// Next implements chsql.Rows.
func (r *Rows) Next() bool {
	if r.err != nil || len(r.data) == 0 {
		return false
	}
	if len(r.types) == 0 {
		r.err = errors.New("RowBinary: data without columns")
		return false
	}
	r.row = r.row[:0]
	for _, t := range r.types {
		v, err := r.decode(t)
		if err != nil {
			r.err = err
			return false
		}
		r.row = append(r.row, v)
	}
	return true
}

// Scan implements chsql.Rows.
func (r *Rows) Scan(dest ...any) error {
	if len(dest) != len(r.row) {
		return fmt.Errorf("scan: %d destinations for %d columns", len(dest), len(r.row))
	}
	for i, d := range dest {
		if err := assign(d, r.row[i]); err != nil {
			return fmt.Errorf("scan column %s: %w", r.names[i], err)
		}
	}
	return nil
}

// Err implements chsql.Rows.
func (r *Rows) Err() error { return r.err }

// Close implements chsql.Rows.
func (r *Rows) Close() error { return nil }

func assign(dest, v any) error {
	switch d := dest.(type) {
	case *string:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%T into *string", v)
		}
		*d = s
	case *uint8:
		n, err := asInt(v)
		if err != nil {
			return fmt.Errorf("into *uint8: %w", err)
		}
		*d = uint8(n)
	case *uint64:
		n, err := asInt(v)
		if err != nil {
			return fmt.Errorf("into *uint64: %w", err)
		}
		*d = uint64(n)
	case *int64:
		n, err := asInt(v)
		if err != nil {
			return fmt.Errorf("into *int64: %w", err)
		}
		*d = n
	case *float64:
		f, ok := v.(float64)
		if !ok {
			return fmt.Errorf("%T into *float64", v)
		}
		*d = f
	case *time.Time:
		tm, ok := v.(time.Time)
		if !ok {
			return fmt.Errorf("%T into *time.Time", v)
		}
		*d = tm
	case *chsql.Map:
		m, ok := v.(*chsql.Map)
		if !ok {
			return fmt.Errorf("%T into *chsql.Map", v)
		}
		for i := range m.Keys {
			d.Put(m.Keys[i], m.Values[i])
		}
	case *[]string:
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%T into *[]string", v)
		}
		out := make([]string, len(a))
		for i, e := range a {
			if out[i], ok = e.(string); !ok {
				return fmt.Errorf("%T element into *[]string", e)
			}
		}
		*d = out
	case *[]time.Time:
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%T into *[]time.Time", v)
		}
		out := make([]time.Time, len(a))
		for i, e := range a {
			if out[i], ok = e.(time.Time); !ok {
				return fmt.Errorf("%T element into *[]time.Time", e)
			}
		}
		*d = out
	case *any:
		*d = v
	default:
		return fmt.Errorf("unsupported destination %T", dest)
	}
	return nil
}
