// Package version holds the build's version, set with -ldflags "-X ...version.Version=...".
package version

// Version of this build.
var Version = "dev"

// SlardarVersion is the original's version whose admin protocol this build speaks; status
// replies report it as slardar_version alongside ours.
const SlardarVersion = "1.1.2"
