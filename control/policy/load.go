package policy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load decodes one or more YAML documents (separated by ---) strictly:
// an unknown or repeated key, a value of the wrong type, an unknown kind or
// a value Validate rejects is an error naming the document's index (from
// 1), the line and the field. Defaults are filled for every key left out.
// Empty documents are skipped. JSON is accepted as YAML.
func Load(data []byte) ([]Document, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []Document
	for i := 1; ; i++ {
		var root yaml.Node
		err := dec.Decode(&root)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %s", i, yamlMessage(err))
		}
		d, line, err := decodeDocument(&root)
		if err != nil {
			return nil, fmt.Errorf("document %d (line %d): %w", i, line, err)
		}
		if d != nil {
			docs = append(docs, *d)
		}
	}
}

// yamlMessage flattens yaml.v3's multi-line errors.
func yamlMessage(err error) string {
	return strings.TrimPrefix(strings.ReplaceAll(err.Error(), "\n  ", " "), "yaml: ")
}

// decodeDocument decodes one YAML document; it returns nil for an empty
// one. line is where the error is (or the document starts).
func decodeDocument(root *yaml.Node) (*Document, int, error) {
	n := root
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil, n.Line, nil
		}
		n = n.Content[0]
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, n.Line, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, n.Line, errors.New("want a mapping with kind, name and service")
	}
	kindNode := mappingValue(n, "kind")
	if kindNode == nil || kindNode.Value == "" {
		return nil, n.Line, fieldErr("kind", "must be set (one of %s)", strings.Join(KindNames(), ", "))
	}
	k, ok := lookupKind(kindNode.Value)
	if !ok || k.Name != kindNode.Value {
		d := &Document{Meta: Meta{Kind: kindNode.Value}}
		return nil, kindNode.Line, d.validate()
	}
	spec := k.New()
	if err := checkKnown(n, []reflect.Type{reflect.TypeOf(Meta{}), reflect.TypeOf(spec).Elem()}, ""); err != nil {
		return nil, err.line, err
	}
	d := &Document{Spec: spec}
	if err := n.Decode(&d.Meta); err != nil {
		line, msg := decodeError(n, err)
		return nil, line, errors.New(msg)
	}
	if err := n.Decode(spec); err != nil {
		line, msg := decodeError(n, err)
		return nil, line, fmt.Errorf("%s: %s", d.Ref(), msg)
	}
	if err := applyDefaults(reflect.ValueOf(spec).Elem(), n); err != nil {
		return nil, n.Line, fmt.Errorf("%s: %w", d.Ref(), err)
	}
	if s, ok := spec.(interface{ setDefaults() }); ok {
		s.setDefaults()
	}
	if d.Kind == KindGuard && d.Mode == "" {
		d.Mode = ModeDryRun
	}
	if err := d.validate(); err != nil {
		line := n.Line
		var fe *FieldError
		if errors.As(err, &fe) {
			line = lineOf(n, fe.Path)
		}
		return nil, line, fmt.Errorf("%s: %w", d.Ref(), err)
	}
	return d, n.Line, nil
}

// mappingValue returns the value node of key in mapping n, or nil.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// keyError is an unknown or repeated key.
type keyError struct {
	FieldError
	line int
}

// yamlFields maps the YAML keys of struct type t to their field types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if strings.Contains(opts, "inline") {
			for k, v := range yamlFields(f.Type) {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

// checkKnown rejects keys that the types (merged, for the envelope and the
// spec) have no field for, and keys given twice. Type mismatches are left
// to the decoder.
func checkKnown(n *yaml.Node, types []reflect.Type, path string) *keyError {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	t := types[0]
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || t == reflect.TypeOf(Duration(0)) {
			return nil
		}
		fields := map[string]reflect.Type{}
		for _, tt := range types {
			for k, v := range yamlFields(tt) {
				fields[k] = v
			}
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			kn, vn := n.Content[i], n.Content[i+1]
			key := kn.Value
			p := joinPath(path, key)
			if first, dup := seen[key]; dup {
				return &keyError{FieldError{p, fmt.Sprintf("given twice (first on line %d)", first)}, kn.Line}
			}
			seen[key] = kn.Line
			ft, ok := fields[key]
			if !ok {
				known := make([]string, 0, len(fields))
				for k := range fields {
					known = append(known, k)
				}
				sort.Strings(known)
				return &keyError{FieldError{p, "unknown field (known: " + strings.Join(known, ", ") + ")"}, kn.Line}
			}
			if err := checkKnown(vn, []reflect.Type{ft}, p); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, c := range n.Content {
			if err := checkKnown(c, []reflect.Type{t.Elem()}, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if err := checkKnown(n.Content[i+1], []reflect.Type{t.Elem()}, joinPath(path, n.Content[i].Value)); err != nil {
				return err
			}
		}
	}
	return nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var durationType = reflect.TypeOf(Duration(0))

// applyDefaults sets every field of struct v whose key is absent (or null)
// in mapping n to its `default` tag, and recurses into nested structs.
func applyDefaults(v reflect.Value, n *yaml.Node) error {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		fv := v.Field(i)
		child := mappingValue(n, name)
		if child != nil && child.Kind == yaml.ScalarNode && child.Tag == "!!null" {
			child = nil
		}
		if child == nil {
			def, ok := f.Tag.Lookup("default")
			if !ok {
				continue
			}
			if err := setDefault(fv, def); err != nil {
				return fmt.Errorf("default of %s: %w", name, err)
			}
			if fv.Kind() == reflect.Pointer && fv.Elem().Kind() == reflect.Struct {
				if err := applyDefaults(fv.Elem(), nil); err != nil {
					return err
				}
			}
			continue
		}
		for child.Kind == yaml.AliasNode && child.Alias != nil {
			child = child.Alias
		}
		switch {
		case fv.Kind() == reflect.Pointer && !fv.IsNil() && fv.Elem().Kind() == reflect.Struct && fv.Elem().Type() != durationType:
			if err := applyDefaults(fv.Elem(), child); err != nil {
				return err
			}
		case fv.Kind() == reflect.Struct && fv.Type() != durationType:
			if err := applyDefaults(fv, child); err != nil {
				return err
			}
		case fv.Kind() == reflect.Slice && child.Kind == yaml.SequenceNode:
			for j := 0; j < fv.Len() && j < len(child.Content); j++ {
				e := fv.Index(j)
				if e.Kind() == reflect.Pointer {
					if e.IsNil() {
						continue
					}
					e = e.Elem()
				}
				if e.Kind() == reflect.Struct && e.Type() != durationType {
					if err := applyDefaults(e, child.Content[j]); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func setDefault(fv reflect.Value, def string) error {
	if fv.Type() == durationType {
		d, err := parseDuration(def)
		if err != nil {
			return err
		}
		fv.SetInt(int64(d))
		return nil
	}
	switch fv.Kind() {
	case reflect.String:
		fv.SetString(def)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(def, 10, 64)
		if err != nil {
			return err
		}
		fv.SetInt(n)
	case reflect.Float64:
		x, err := strconv.ParseFloat(def, 64)
		if err != nil {
			return err
		}
		fv.SetFloat(x)
	case reflect.Slice:
		if fv.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("no default for %s", fv.Type())
		}
		fv.Set(reflect.ValueOf(strings.Split(def, ",")))
	case reflect.Pointer:
		if def != "{}" || fv.Type().Elem().Kind() != reflect.Struct {
			return fmt.Errorf("default %q: want {} for %s", def, fv.Type())
		}
		fv.Set(reflect.New(fv.Type().Elem()))
	default:
		return fmt.Errorf("no default for %s", fv.Type())
	}
	return nil
}

// lineOf returns the line of the node at path (rules[0].backends[1].weight)
// below mapping n, or of the deepest node on the way.
func lineOf(n *yaml.Node, path string) int {
	line := n.Line
	if path == "" {
		return line
	}
	for _, seg := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(seg, "[")
		if key != "" {
			var kn *yaml.Node
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == key {
						kn, n = n.Content[i], n.Content[i+1]
						break
					}
				}
			}
			if kn == nil {
				return line
			}
			line = kn.Line
		}
		for rest != "" {
			idxs, after, _ := strings.Cut(rest, "]")
			idx, err := strconv.Atoi(idxs)
			if err != nil || n.Kind != yaml.SequenceNode || idx < 0 || idx >= len(n.Content) {
				return line
			}
			n = n.Content[idx]
			line = n.Line
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return line
}

// lineRE finds the line yaml.v3 puts in its decoding errors.
var lineRE = regexp.MustCompile(`^line (\d+): `)

// decodeError turns a decoding error into its line and a message naming
// the field at that line: "timeout: \"soon\" is not a duration".
func decodeError(n *yaml.Node, err error) (int, string) {
	msg := yamlMessage(err)
	msg = strings.TrimPrefix(msg, "unmarshal errors: ")
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return n.Line, msg
	}
	line, _ := strconv.Atoi(m[1])
	msg = msg[len(m[0]):]
	if path := pathAt(n, line, ""); path != "" {
		msg = path + ": " + msg
	}
	return line, msg
}

// pathAt returns the path of the last key on line below n.
func pathAt(n *yaml.Node, line int, path string) string {
	found := ""
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			if k.Line == line {
				found = p
			}
			if sub := pathAt(v, line, p); sub != "" {
				found = sub
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			if sub := pathAt(c, line, fmt.Sprintf("%s[%d]", path, i)); sub != "" {
				found = sub
			}
		}
	}
	return found
}
