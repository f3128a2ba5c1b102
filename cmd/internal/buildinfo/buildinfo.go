// Package buildinfo reports the version of the running binary, read from the
// Go build information (module version and VCS stamp) unless overridden at link
// time with -ldflags "-X github.com/meshscope/meshscope/cmd/internal/buildinfo.version=v1.2.3".
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version may be set at link time.
var version = ""

// Info is what `version` prints and what /api/v1/status/buildinfo serves.
type Info struct {
	Version   string
	Revision  string
	BuildDate string
	GoVersion string
}

// Get reads the build information of the running binary.
func Get() Info {
	info := Info{Version: version, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.time":
				info.BuildDate = s.Value
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	return info
}

// String is the one-line form printed by `version`.
func (i Info) String() string {
	rev := i.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		rev = "unknown"
	}
	return fmt.Sprintf("%s (revision %s, %s)", i.Version, rev, i.GoVersion)
}
