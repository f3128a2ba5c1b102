package store

import (
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/meshscope/meshscope/control/policy"
)

// Diff renders a change as YAML lines prefixed "+ " (added), "- "
// (removed) or "  " (kept), the whole document for creates and deletes.
func Diff(c Change) string {
	before, after := yamlLines(c.Before), yamlLines(c.After)
	var b strings.Builder
	for _, l := range lineDiff(before, after) {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

func yamlLines(d *policy.Document) []string {
	if d == nil {
		return nil
	}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(d); err != nil {
		return []string{"# " + err.Error()}
	}
	_ = enc.Close()
	return strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
}

// lineDiff is a longest-common-subsequence diff; documents are short.
func lineDiff(a, b []string) []string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < n && j < m {
		switch {
		case a[i] == b[j]:
			out = append(out, "  "+a[i])
			i++
			j++
		case lcs[i+1][j] >= lcs[i][j+1]:
			out = append(out, "- "+a[i])
			i++
		default:
			out = append(out, "+ "+b[j])
			j++
		}
	}
	for ; i < n; i++ {
		out = append(out, "- "+a[i])
	}
	for ; j < m; j++ {
		out = append(out, "+ "+b[j])
	}
	return out
}

// ChangeText is the audit log's view of a set of changes: the changed
// objects ("Kind/name") and their diffs, each headed "# op Kind/name".
// Unchanged documents are left out.
func ChangeText(changes []Change) (targets []string, diff string) {
	var b strings.Builder
	for _, c := range changes {
		if c.Op == OpUnchanged {
			continue
		}
		targets = append(targets, c.Kind+"/"+c.Name)
		b.WriteString("# " + c.Op + " " + c.Kind + "/" + c.Name + "\n")
		b.WriteString(Diff(c))
	}
	return targets, b.String()
}
