package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Dir is a directory holding the layout as files: key a/b/c is the file Root/a/b/c. Files and
// directories starting with "." are ignored (editor temp files, .git).
type Dir struct {
	Root string
	// Rescan is the period of a full rescan on top of file notifications. Default 5s.
	Rescan time.Duration
}

func (d *Dir) String() string { return "dir://" + d.Root }
func (d *Dir) Close() error   { return nil }

func (d *Dir) path(key string) (string, error) {
	clean := filepath.Clean("/" + key)
	if clean == "/" || strings.Contains(key, "\x00") {
		return "", fmt.Errorf("bad key %q", key)
	}
	return filepath.Join(d.Root, clean), nil
}

func (d *Dir) Ping(context.Context) error {
	if _, err := os.Stat(d.Root); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (d *Dir) List(_ context.Context, prefix string) (map[string][]byte, error) {
	m := make(map[string][]byte)
	err := filepath.WalkDir(d.Root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p == d.Root {
				return nil
			}
			return err
		}
		if strings.HasPrefix(e.Name(), ".") && p != d.Root {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(d.Root, p)
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		m[key] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", d.Root, err)
	}
	return m, nil
}

// Watch notifies on file changes (fsnotify on every directory, re-added as they appear) and
// on a periodic rescan, whenever the contents differ from the last snapshot.
func (d *Dir) Watch(ctx context.Context, prefix string, notify func(map[string][]byte), onErr func(error)) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		onErr(fmt.Errorf("watching %s: %w", d.Root, err))
	}
	if w != nil {
		defer w.Close()
	}
	addDirs := func() {
		if w == nil {
			return
		}
		filepath.WalkDir(d.Root, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				w.Add(p)
			}
			return nil
		})
	}
	rescan := d.Rescan
	if rescan <= 0 {
		rescan = 5 * time.Second
	}
	tick := time.NewTicker(rescan)
	defer tick.Stop()
	var last map[string][]byte
	check := func() {
		addDirs()
		m, err := d.List(ctx, prefix)
		if err != nil {
			onErr(err)
			return
		}
		if last == nil || !maps.EqualFunc(m, last, bytes.Equal) {
			last = m
			notify(maps.Clone(m))
		}
	}
	check()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		events, errs = w.Events, w.Errors
	}
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-events:
			debounce.Reset(20 * time.Millisecond) // an editor's write is several events
		case err := <-errs:
			onErr(fmt.Errorf("watching %s: %w", d.Root, err))
		case <-debounce.C:
			check()
		case <-tick.C:
			check()
		}
	}
}

func (d *Dir) Get(_ context.Context, key string) ([]byte, bool, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, false, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	return b, err == nil, err
}

// Put writes atomically (temporary file, then rename), so a watcher never reads half a value.
func (d *Dir) Put(_ context.Context, key string, value []byte) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(value); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

func (d *Dir) Delete(_ context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
