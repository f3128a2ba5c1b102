package kubernetes

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Overlays are the topologies under overlays/, each an installable
// `kubectl apply -k` target.
var Overlays = []string{"single", "ha"}

// Dir is this package's directory on disk (where base/ and overlays/ are).
func Dir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// Render builds the kustomization in dir (a path below Dir, such as
// "overlays/ha") as `kubectl kustomize` does and returns the documents as
// one multi-document YAML stream.
func Render(dir string) ([]byte, error) {
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(Dir(), dir))
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	out, err := m.AsYaml()
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return bytes.TrimSpace(out), nil
}
