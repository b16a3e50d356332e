package syncer

import (
	"context"
	"errors"

	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/reconcile"
)

// Result is what one pass did (or, dry, would do) to one target.
type Result struct {
	Store    string              `json:"store"`
	Target   string              `json:"target"`
	Changes  []reconcile.Change  `json:"changes"`
	Problems []reconcile.Problem `json:"invalid_keys,omitempty"`
	Error    string              `json:"error,omitempty"`
}

// ErrNotInSync is returned by Once when any store, target or key failed.
var ErrNotInSync = errors.New("not every target is in sync with the store")

// Once reads every source once and applies it to every target (only plans it, with dryRun).
// Without an earlier run nothing is "owned", so deletions happen only with Prune.
func Once(ctx context.Context, syncs []Sync, dryRun bool) ([]Result, error) {
	var out []Result
	failed := false
	for _, sy := range syncs {
		kv, err := sy.Store.List(ctx, sy.Prefix)
		if err != nil {
			out = append(out, Result{Store: sy.Store.String(), Error: err.Error()})
			failed = true
			continue
		}
		d := reconcile.ParseSnapshot(sy.Prefix, kv, config.NormalizeUser)
		failed = failed || len(d.Problems) > 0
		for _, addr := range sy.Targets {
			r := Result{Store: sy.Store.String(), Target: addr, Problems: d.Problems, Changes: []reconcile.Change{}}
			changes, _, _, err := sy.reconcile(ctx, addr, d, reconcile.Owned{}, dryRun)
			if changes != nil {
				r.Changes = changes
			}
			if err != nil {
				r.Error = err.Error()
				failed = true
			}
			out = append(out, r)
		}
	}
	if failed {
		return out, ErrNotInSync
	}
	return out, nil
}
