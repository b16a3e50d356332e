// Package script runs Lua 5.1 hooks in-process (gopher-lua, a pure-Go VM) the way Slardar ran
// stream-lua scripts: code is staged, installed and uninstalled at run time over the admin
// protocol's code topic; script.preread<port>, script.content<port> and script.log<port> are
// hooks of the listener on that port; every other name is a module scripts require.
package script

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"
)

// Errors with the original's strings (lua-resty-load).
const (
	ErrAlreadyStaged = "code already in shdict"
	ErrNotStaged     = "code not found in shdict"
	ErrAlreadyLoaded = "code already loaded"
)

// Module is one version of a script or module.
type Module struct {
	Name    string
	Version string // md5 of the source, hex
	Time    time.Time
	Source  []byte
	proto   *lua.FunctionProto
}

// CodeError is a refusal of the code registry; its message goes back to the admin client.
type CodeError struct{ Msg string }

func (e *CodeError) Error() string { return e.Msg }

// Code is the code registry. Staged and installed code are kept apart, so staging a new
// version never changes what runs (the original's "code version in confusion" bug).
type Code struct {
	Now func() time.Time // default time.Now

	mu            sync.RWMutex
	staged        map[string]*Module
	installed     map[string]*Module
	globalVersion int64
	commitVersion string
}

func (c *Code) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Compile checks Lua source and returns its prototype; the error carries the compiler's message.
func Compile(name string, src []byte) (*lua.FunctionProto, error) {
	chunk, err := parse.Parse(bytes.NewReader(src), name)
	if err != nil {
		return nil, &CodeError{Msg: fmt.Sprintf("compiling %s: %v", name, err)}
	}
	proto, err := lua.Compile(chunk, name)
	if err != nil {
		return nil, &CodeError{Msg: fmt.Sprintf("compiling %s: %v", name, err)}
	}
	return proto, nil
}

// Version is the version (md5, hex) source gets.
func Version(src []byte) string {
	sum := md5.Sum(src)
	return hex.EncodeToString(sum[:])
}

// NewModule compiles source into a module ready to install (see Replace).
func NewModule(name string, src []byte) (*Module, error) {
	proto, err := Compile(name, src)
	if err != nil {
		return nil, err
	}
	return &Module{Name: name, Version: Version(src), Source: append([]byte(nil), src...), proto: proto}, nil
}

// ReadDir reads and compiles every *.lua file of dir (module name: the file name less .lua);
// an empty dir has none. A file that does not compile fails the whole read, naming the file.
func ReadDir(dir string) (map[string]*Module, error) {
	found := make(map[string]*Module)
	if dir == "" {
		return found, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("scripts.dir: %w", err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".lua")
		if !ok || e.IsDir() {
			continue
		}
		src, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("scripts.dir: %w", err)
		}
		if found[name], err = NewModule(name, src); err != nil {
			return nil, fmt.Errorf("scripts.dir %s: %w", e.Name(), err)
		}
	}
	return found, nil
}

// Replace installs the modules and uninstalls the names of remove in one step, leaving what is
// staged alone (the scripts directory of the config file does this on start and reload).
func (c *Code) Replace(install []*Module, remove []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.installed == nil {
		c.installed = make(map[string]*Module)
	}
	for _, m := range install {
		installed := *m
		installed.Time = c.now()
		c.installed[m.Name] = &installed
	}
	for _, name := range remove {
		delete(c.installed, name)
	}
	c.globalVersion++
}

// Stage compiles and stages source under name (POST code). Source that does not compile is
// refused with the compiler's message; the same source staged twice is refused as the
// original did.
func (c *Code) Stage(name string, src []byte) error {
	version := Version(src)
	c.mu.RLock()
	same := c.staged[name] != nil && c.staged[name].Version == version
	c.mu.RUnlock()
	if same {
		return &CodeError{Msg: ErrAlreadyStaged}
	}
	m, err := NewModule(name, src)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.staged == nil {
		c.staged = make(map[string]*Module)
	}
	c.staged[name] = m
	c.commitVersion = "0" // as the original: staging resets the store's commit version
	return nil
}

// Install makes the staged version of name the one that runs (PUT code).
func (c *Code) Install(name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.staged[name]
	if m == nil {
		return &CodeError{Msg: ErrNotStaged}
	}
	if cur := c.installed[name]; cur != nil && cur.Version == m.Version {
		return &CodeError{Msg: ErrAlreadyLoaded}
	}
	if c.installed == nil {
		c.installed = make(map[string]*Module)
	}
	installed := *m
	installed.Time = c.now()
	c.installed[name] = &installed
	c.globalVersion++
	return nil
}

// Load stages and installs (LOAD code).
func (c *Code) Load(name string, src []byte) error {
	if err := c.Stage(name, src); err != nil {
		return err
	}
	return c.Install(name)
}

// Delete uninstalls name and drops what is staged for it (DELETE code); it always succeeds.
func (c *Code) Delete(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.staged, name)
	delete(c.installed, name)
	c.globalVersion++
}

// Lookup returns the installed version of name, or nil.
func (c *Code) Lookup(name string) *Module {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.installed[name]
}

// GlobalVersion counts installs and uninstalls.
func (c *Code) GlobalVersion() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.globalVersion
}

// ModuleInfo is one entry of GET code info.
type ModuleInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Time    string `json:"time"`
}

// Info is GET code info.
type Info struct {
	GlobalVersion int64        `json:"global_version"`
	CommitVersion string       `json:"commit_version"`
	Modules       []ModuleInfo `json:"modules"`
}

// TimeLayout is how the original printed times (local time).
const TimeLayout = "2006-01-02 15:04:05"

// Info lists the installed modules by name.
func (c *Code) Info() Info {
	c.mu.RLock()
	defer c.mu.RUnlock()
	info := Info{GlobalVersion: c.globalVersion, CommitVersion: c.commitVersion, Modules: []ModuleInfo{}}
	if info.CommitVersion == "" {
		info.CommitVersion = "0"
	}
	for _, m := range c.installed {
		info.Modules = append(info.Modules, m.info())
	}
	sort.Slice(info.Modules, func(i, j int) bool { return info.Modules[i].Name < info.Modules[j].Name })
	return info
}

// Get is GET code <name>: the installed version's info, or an empty object.
func (c *Code) Get(name string) any {
	if m := c.Lookup(name); m != nil {
		return m.info()
	}
	return struct{}{}
}

func (m *Module) info() ModuleInfo {
	return ModuleInfo{Name: m.Name, Version: m.Version, Time: m.Time.Format(TimeLayout)}
}
