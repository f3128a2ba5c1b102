package inject

import (
	"bytes"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Actions reported per workload.
const (
	Injected  = "injected"
	Unchanged = "unchanged" // already injected with these options
	Skipped   = "skipped"   // meshscope.io/inject: disabled
)

// Outcome is what happened to one workload.
type Outcome struct {
	Object string // "Deployment shop/web"
	Action string // Injected, Unchanged or Skipped
}

// Transform injects the sidecar into every workload of a YAML stream and
// returns the stream with each document in place: workloads that change
// are re-encoded, every other document (and workloads left as they were)
// is written byte for byte as read. The error names the document and the
// field.
func Transform(in []byte, o Options) ([]byte, []Outcome, error) {
	if err := o.Validate(); err != nil {
		return nil, nil, err
	}
	docs, err := splitDocuments(in)
	if err != nil {
		return nil, nil, err
	}
	var out bytes.Buffer
	var outcomes []Outcome
	for i, d := range docs {
		if i > 0 {
			if b := out.Bytes(); len(b) > 0 && b[len(b)-1] != '\n' {
				out.WriteByte('\n')
			}
			out.WriteString("---\n")
		}
		res, oc, err := transformDocument(d.raw, o)
		if err != nil {
			return nil, nil, fmt.Errorf("document %d%s", d.index, err)
		}
		outcomes = append(outcomes, oc...)
		out.Write(res)
	}
	return out.Bytes(), outcomes, nil
}

// transformDocument returns raw itself unless a workload in it changes.
// Errors start with " (Kind name): " or ": " to follow "document N".
func transformDocument(raw []byte, o Options) ([]byte, []Outcome, error) {
	if isBlank(raw) {
		return raw, nil, nil
	}
	j, err := toJSON(raw)
	if err != nil {
		return nil, nil, fmt.Errorf(": %w", err)
	}
	res, outcomes, err := transformObject(j, o)
	if err != nil || res == nil {
		return raw, outcomes, err
	}
	y, err := yaml.Marshal(res)
	if err != nil {
		return nil, nil, fmt.Errorf(": encoding: %w", err)
	}
	return append(leadingComments(raw), y...), outcomes, nil
}

// transformObject injects into one object (JSON). A nil result means
// "unchanged: keep the input".
func transformObject(j []byte, o Options) (map[string]any, []Outcome, error) {
	t, err := peekType(j)
	if err != nil {
		return nil, nil, fmt.Errorf(": %w", err)
	}
	if t.Kind == "" {
		return nil, nil, fmt.Errorf(": kind: missing (not a Kubernetes object)")
	}
	var obj any
	var meta *metav1.ObjectMeta
	var tmpl *corev1.PodTemplateSpec
	switch t.Kind {
	case "Deployment":
		d := &appsv1.Deployment{}
		obj, meta, tmpl = d, &d.ObjectMeta, &d.Spec.Template
	case "StatefulSet":
		s := &appsv1.StatefulSet{}
		obj, meta, tmpl = s, &s.ObjectMeta, &s.Spec.Template
	case "DaemonSet":
		s := &appsv1.DaemonSet{}
		obj, meta, tmpl = s, &s.ObjectMeta, &s.Spec.Template
	case "List":
		return transformList(j, t, o)
	default:
		return nil, nil, nil // not a workload: untouched
	}
	if t.APIVersion != "apps/v1" {
		return nil, nil, fmt.Errorf(" (%s): apiVersion: %q: only apps/v1 workloads are injected", t, t.APIVersion)
	}
	if err := DecodeStrict(j, obj); err != nil {
		return nil, nil, fmt.Errorf(" (%s): %w", t, err)
	}
	off, err := disabled(meta, tmpl)
	if err != nil {
		return nil, nil, fmt.Errorf(" (%s): %w", t, err)
	}
	if off {
		return nil, []Outcome{{t.String(), Skipped}}, nil
	}
	before := tmpl.DeepCopy()
	if err := injectPod(meta, tmpl, o); err != nil {
		return nil, nil, fmt.Errorf(" (%s): %w", t, err)
	}
	if equality.Semantic.DeepEqual(before, tmpl) {
		return nil, []Outcome{{t.String(), Unchanged}}, nil
	}
	m, err := encodeObject(obj)
	if err != nil {
		return nil, nil, fmt.Errorf(" (%s): encoding: %w", t, err)
	}
	return m, []Outcome{{t.String(), Injected}}, nil
}

// transformList injects into the items of a v1 List (what `kubectl get -o
// yaml` prints); items that are not workloads stay as they were.
func transformList(j []byte, t typeMeta, o Options) (map[string]any, []Outcome, error) {
	if t.APIVersion != "v1" {
		return nil, nil, fmt.Errorf(" (List): apiVersion: %q: want v1", t.APIVersion)
	}
	var list struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ListMeta   `json:"metadata"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := DecodeStrict(j, &list); err != nil {
		return nil, nil, fmt.Errorf(" (List): %w", err)
	}
	var whole map[string]any
	if err := json.Unmarshal(j, &whole); err != nil {
		return nil, nil, fmt.Errorf(" (List): %w", err)
	}
	items, _ := whole["items"].([]any)
	var outcomes []Outcome
	changed := false
	for i, item := range list.Items {
		res, oc, err := transformObject(item, o)
		if err != nil {
			return nil, nil, fmt.Errorf(" (List): items[%d]%s", i, err)
		}
		outcomes = append(outcomes, oc...)
		if res != nil {
			items[i], changed = res, true
		}
	}
	if !changed {
		return nil, outcomes, nil
	}
	return whole, outcomes, nil
}

// encodeObject turns a typed object into the map that is written, without
// the empty fields the API types always encode (creationTimestamp: null,
// status: {}), which no one wrote.
func encodeObject(obj any) (map[string]any, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	dropNullTimestamp(m)
	if spec, ok := m["spec"].(map[string]any); ok {
		if tmpl, ok := spec["template"].(map[string]any); ok {
			dropNullTimestamp(tmpl)
		}
	}
	if st, ok := m["status"].(map[string]any); ok && len(st) == 0 {
		delete(m, "status")
	}
	return m, nil
}

func dropNullTimestamp(obj map[string]any) {
	if meta, ok := obj["metadata"].(map[string]any); ok {
		if v, ok := meta["creationTimestamp"]; ok && v == nil {
			delete(meta, "creationTimestamp")
		}
	}
}

// leadingComments keeps the comment lines above a re-encoded document.
func leadingComments(raw []byte) []byte {
	var out []byte
	for _, line := range bytes.SplitAfter(raw, []byte("\n")) {
		t := bytes.TrimSpace(line)
		if len(t) > 0 && t[0] != '#' {
			break
		}
		if len(t) > 0 {
			out = append(out, line...)
		}
	}
	return out
}
