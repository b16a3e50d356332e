package daemon

import (
	"context"
	"log/slog"
	"strings"

	"github.com/slardar-go/slardar/pkg/config"
	"github.com/slardar-go/slardar/pkg/script"
)

// Scripts is the Lua part of a daemon: the code registry (and its admin topic), the runtime
// whose hooks run a port's scripts, the shared dicts and script limits, and the scripts
// directory of the configuration file. slardar-proxy's hooks are its Runtime; mysql-proxy's
// wrap it.
type Scripts struct {
	Code    *script.Code
	Runtime *script.Runtime
	core    *Core
	dir     FromFile // the directory's scripts as last installed
}

// NewScripts builds the Lua part; Attach it to the daemon's Core before it starts.
func NewScripts(log *slog.Logger) *Scripts {
	code := &script.Code{}
	return &Scripts{Code: code, Runtime: &script.Runtime{Code: code, Dicts: &script.Dicts{}, Logger: log.With("component", "script")}}
}

// Attach serves the code topic on c's admin protocol and counts script runs in c's metrics.
func (s *Scripts) Attach(c *Core) {
	s.core = c
	s.Code.Register(c.Mux)
	s.Runtime.OnRun = func(name, result string) { c.Metrics.ScriptRuns.WithLabelValues(name, result).Inc() }
}

// Prepare implements Part: the scripts directory read and compiled now; the scripts, the limits
// and the shared dicts installed at commit.
func (s *Scripts) Prepare(_ context.Context, cfg *config.File) (func(), error) {
	found, err := script.ReadDir(cfg.Scripts.Dir)
	if err != nil {
		return nil, err
	}
	return func() {
		s.install(cfg.Scripts.Dir, found)
		s.Runtime.SetLimits(script.Limits{Timeout: cfg.Scripts.Timeout, LogTimeout: cfg.Scripts.LogTimeout,
			MaxHeap: uint64(cfg.Scripts.MaxHeap)})
		for name, size := range cfg.SharedDicts {
			s.Runtime.Dicts.Define(name, int(size))
		}
	}, nil
}

// install installs the directory's scripts whose file is new or changed since the last load,
// and uninstalls those whose file is gone; scripts loaded over the admin protocol under a name
// whose file did not change stay.
func (s *Scripts) install(dir string, found map[string]*script.Module) {
	versions := make(map[string]string, len(found))
	for name, m := range found {
		versions[name] = m.Version
	}
	set, gone := s.dir.Diff(versions)
	if len(set)+len(gone) == 0 {
		return
	}
	install := make([]*script.Module, len(set))
	for i, name := range set {
		install[i] = found[name]
		s.core.Log.Info("script loaded", "name", name, "dir", dir)
		if strings.HasPrefix(name, "script.") { // a hook: its runs are counted from now
			for _, result := range []string{"ok", "exit", "error"} {
				s.core.Metrics.ScriptRuns.WithLabelValues(name, result)
			}
		}
	}
	for _, name := range gone {
		s.core.Log.Info("script removed with its file", "name", name)
	}
	s.Code.Replace(install, gone)
	s.dir.Commit(versions)
}
