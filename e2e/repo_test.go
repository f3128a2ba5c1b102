package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// runArtefact matches files that runs leave behind and the repository must
// not carry: logs, pid files, profiles and command output captures.
var runArtefact = regexp.MustCompile(`(^|/)[^/]*\.(log|pid|pprof|prof|out)$`)

// TestRepositoryHoldsNoRunArtefacts fails when a log or other run artefact is
// tracked by git (outside testdata/, where fixtures may look like them).
func TestRepositoryHoldsNoRunArtefacts(t *testing.T) {
	_, files := trackedFiles(t)
	for _, f := range files {
		if runArtefact.MatchString(f) && !strings.Contains(f, "testdata/") {
			t.Errorf("run artefact tracked by git: %s (remove it; .gitignore covers it)", f)
		}
	}
}

// TestRepositoryHoldsNoBinaries fails when a compiled executable (ELF) is
// tracked by git: a `go build` in the checkout's root leaves one behind.
func TestRepositoryHoldsNoBinaries(t *testing.T) {
	root, files := trackedFiles(t)
	for _, f := range files {
		fh, err := os.Open(filepath.Join(root, f))
		if err != nil {
			continue // deleted in the work tree
		}
		head := make([]byte, 4)
		n, _ := fh.Read(head)
		fh.Close()
		if bytes.Equal(head[:n], []byte("\x7fELF")) {
			t.Errorf("binary tracked by git: %s (remove it; build into bin/)", f)
		}
	}
}

// trackedFiles is the checkout's root and the files git tracks in it; the
// test is skipped outside a git checkout.
func trackedFiles(t *testing.T) (string, []string) {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("git", "-C", root, "ls-files").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	return root, strings.Split(strings.TrimSpace(string(out)), "\n")
}
