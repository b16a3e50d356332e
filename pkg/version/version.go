// Package version holds the build's version, set with -ldflags "-X ...version.Version=..."
// (make build); a build without it (go install, go build) reports what the Go toolchain
// recorded: the module version, or the VCS revision.
package version

import (
	"runtime/debug"
	"time"
)

// Version of this build.
var Version = "dev"

func init() {
	if Version == "dev" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			Version = fromBuildInfo(bi)
		}
	}
}

// fromBuildInfo is the module's version (go install ...@v1.2.3), else the commit the binary was
// built from ("dev-0123456789ab", "-dirty" with uncommitted changes), else "dev".
func fromBuildInfo(bi *debug.BuildInfo) string {
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "dev"
	}
	return "dev-" + rev[:min(12, len(rev))] + dirty
}

// SlardarVersion is the original's version whose admin protocol this build speaks; status
// replies report it as slardar_version alongside ours.
const SlardarVersion = "1.1.2"

// ManualDate is the date in the generated man pages' headers: the month of the release they
// document, bumped by hand with a release. It is fixed in the source, not read from the clock or
// SOURCE_DATE_EPOCH, so that the committed pages are a pure function of the tree and `make
// docs-check` gives the same answer on any day and machine. (The HEAD commit's date cannot
// serve: the pages are committed in the very commit whose date they would have to carry.)
var ManualDate = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)

// Template is the --version output of every binary: the build's version and the admin
// protocol it speaks (the one `slardarctl status` reports as slardar_version).
const Template = "{{.Name}} {{.Version}} (Slardar " + SlardarVersion + " admin protocol)\n"
