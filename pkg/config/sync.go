package config

import (
	"fmt"
	"os"
	"time"
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
