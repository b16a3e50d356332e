package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/slardar-go/slardar/pkg/store"
)

// SyncFile is store-sync's configuration file.
type SyncFile struct {
	Listen   string        `yaml:"listen"` // health and metrics, default 127.0.0.1:1898
	Resync   time.Duration `yaml:"resync"` // full resync period, default 30s
	Debounce Debounce      `yaml:"debounce"`
	Log      Log           `yaml:"log"`
	Syncs    []Sync        `yaml:"syncs"`
}

// Debounce bounds how store-sync batches a burst of changes.
type Debounce struct {
	Min time.Duration `yaml:"min"` // quiet time before applying, default 50ms
	Max time.Duration `yaml:"max"` // longest delay under a burst, default 1s
}

// Sync is one store feeding a set of proxies.
type Sync struct {
	Source  string   `yaml:"source"`  // consul://, etcd://, dir://
	Prefix  string   `yaml:"prefix"`  // default config/slardar/
	Targets []string `yaml:"targets"` // admin addresses
	Token   string   `yaml:"token"`   // admin token of the targets
	Prune   bool     `yaml:"prune"`
}

// LoadSync reads store-sync's configuration file.
func LoadSync(path string) (*SyncFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	f := &SyncFile{}
	if err := DecodeStrict(data, f); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := f.Log.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return f, nil
}

// Logging is the log settings (lifecycle.Configured).
func (f *SyncFile) Logging() Log { return f.Log }

// Validate checks what the file and flags together must have: at least one sync, each with a
// store address and targets of the form HOST:PORT.
func (f *SyncFile) Validate() error {
	if len(f.Syncs) == 0 {
		return errors.New("nothing to sync: give --source and --target, or a config file with syncs")
	}
	for i, s := range f.Syncs {
		st, err := store.Open(s.Source)
		if err != nil {
			return fmt.Errorf("syncs[%d]: %w", i, err)
		}
		st.Close()
		if len(s.Targets) == 0 {
			return fmt.Errorf("syncs[%d] (%s): no targets", i, s.Source)
		}
		for _, t := range s.Targets {
			if _, _, err := net.SplitHostPort(t); err != nil {
				return fmt.Errorf("syncs[%d] (%s): target %q: want HOST:PORT", i, s.Source, t)
			}
		}
	}
	return nil
}

// Summary is what --check prints: each store and the proxies it feeds, and the endpoint.
func (f *SyncFile) Summary() []string {
	lines := []string{"http endpoint (/metrics, /livez, /readyz, /health) on " + f.Listen}
	for _, s := range f.Syncs {
		prefix := s.Prefix
		if prefix == "" {
			prefix = store.DefaultPrefix
		}
		line := fmt.Sprintf("sync %s (prefix %s) -> %s", s.Source, prefix, strings.Join(s.Targets, ", "))
		if s.Prune {
			line += " (prune)"
		}
		lines = append(lines, line)
	}
	return lines
}
