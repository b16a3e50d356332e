// Package version holds the build's version, set with -ldflags "-X ...version.Version=...".
package version

import "time"

// Version of this build.
var Version = "dev"

// SlardarVersion is the original's version whose admin protocol this build speaks; status
// replies report it as slardar_version alongside ours.
const SlardarVersion = "1.1.2"

// ManualDate is the date in the generated man pages' headers: the month of the release they
// document, bumped by hand with a release. It is fixed in the source, not read from the clock or
// SOURCE_DATE_EPOCH, so that the committed pages are a pure function of the tree and `make
// docs-check` gives the same answer on any day and machine. (The HEAD commit's date cannot
// serve: the pages are committed in the very commit whose date they would have to carry.)
var ManualDate = time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC)
