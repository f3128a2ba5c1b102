package inject

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// document is one YAML document of a stream: its bytes as read (separator
// excluded) and its 1-based position, for error messages.
type document struct {
	index int
	raw   []byte
}

// splitDocuments cuts a YAML stream at its "---" lines (a line "----" is
// content, as in YAML). A "---" line may
// carry a comment; anything else after "---" on the line is an error (a
// document starting on the separator line is legal YAML but written by
// nobody, and splitting it right would need a YAML parser here).
func splitDocuments(data []byte) ([]document, error) {
	var docs []document
	var cur bytes.Buffer
	for n, line := range bytes.SplitAfter(data, []byte("\n")) {
		t := bytes.TrimRight(line, " \t\r\n")
		if bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) || bytes.HasPrefix(t, []byte("---\t")) {
			rest := bytes.TrimSpace(t[3:])
			if len(rest) == 0 || rest[0] == '#' {
				docs = append(docs, document{index: len(docs) + 1, raw: bytes.Clone(cur.Bytes())})
				cur.Reset()
				continue
			}
			return nil, fmt.Errorf("line %d: content after the document separator %q: start the document on the next line", n+1, t)
		}
		cur.Write(line)
	}
	docs = append(docs, document{index: len(docs) + 1, raw: bytes.Clone(cur.Bytes())})
	return docs, nil
}

// isBlank reports whether a document holds only comments and whitespace.
func isBlank(raw []byte) bool {
	for _, line := range bytes.Split(raw, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' {
			return false
		}
	}
	return true
}

// typeMeta is what every Kubernetes object starts with.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

func (t typeMeta) String() string {
	name := t.Metadata.Name
	if t.Metadata.Namespace != "" {
		name = t.Metadata.Namespace + "/" + name
	}
	if name == "" {
		return t.Kind
	}
	return t.Kind + " " + name
}

// toJSON converts one YAML document to JSON; duplicate keys are an error.
func toJSON(raw []byte) ([]byte, error) {
	j, err := yaml.YAMLToJSONStrict(raw)
	if err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	return j, nil
}

// peekType reads apiVersion, kind and the name of a JSON object.
func peekType(j []byte) (typeMeta, error) {
	var t typeMeta
	if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
		return t, nil
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(j, &t); err != nil {
		return t, fmt.Errorf("not a Kubernetes object (want a mapping with apiVersion and kind): %w", err)
	}
	return t, nil
}

// DecodeStrict decodes JSON into a Kubernetes API type as the API server's
// strict field validation does: unknown and duplicate fields are errors,
// named by their path (spec.template.spec.containers[0].portz).
func DecodeStrict(j []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		msgs := make([]string, len(strict))
		for i, e := range strict {
			msgs[i] = e.Error()
		}
		return errors.New(strings.Join(msgs, "; "))
	}
	return nil
}
