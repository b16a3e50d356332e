package store

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestOpen(t *testing.T) {
	st, err := Open("consul://127.0.0.1:8500?wait=30s&token=x")
	if err != nil || st.(*Consul).WaitTime != 30*time.Second {
		t.Fatalf("consul: %v", err)
	}
	for url, want := range map[string]string{
		"consul://127.0.0.1:8500?wait=soon":         "wait=",
		"etcd://127.0.0.1:2379?cacert=/nonexistent": "no such file",
		"dir://":    "dir:///absolute/path",
		"redis://x": "want consul://",
	} {
		if _, err := Open(url); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want %q", url, err, want)
		}
	}
}

func TestDir(t *testing.T) {
	ctx := context.Background()
	d := &Dir{Root: t.TempDir(), Rescan: 50 * time.Millisecond}
	if err := d.Put(ctx, "p/upstreams_stream/a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	d.Put(ctx, "p/.hidden/x", []byte("2"))
	if err := d.Put(ctx, "../escape", []byte("3")); err != nil {
		t.Fatal(err)
	}
	m, err := d.List(ctx, "p/")
	if err != nil || len(m) != 1 || string(m["p/upstreams_stream/a"]) != "1" {
		t.Fatalf("list: %v %v", m, err)
	}
	if all, _ := d.List(ctx, ""); all["escape"] == nil {
		t.Fatalf("a key cannot leave the root: %v", all)
	}
	got := make(chan map[string][]byte, 10)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go d.Watch(wctx, "p/", func(m map[string][]byte) { got <- m }, func(error) {})
	<-got
	d.Put(ctx, "p/lua_stream/b", []byte("x"))
	select {
	case m := <-got:
		if len(m) != 2 {
			t.Fatalf("after a write: %v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no notification")
	}
}
