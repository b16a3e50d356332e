package l4

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testutil"
)

// TestSpliceHalfClose: the client finishes sending, the upstream still answers afterwards, and
// both byte counts are reported.
func TestSpliceHalfClose(t *testing.T) {
	user, proxyFront := testutil.Pair(t)
	proxyBack, backend := testutil.Pair(t)
	type res struct {
		in, out int64
		err     error
	}
	done := make(chan res, 1)
	go func() {
		in, out, err := Splice(proxyFront, proxyBack, time.Minute)
		done <- res{in, out, err}
	}()
	user.Write([]byte("request"))
	user.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(backend)
	if err != nil || string(got) != "request" {
		t.Fatalf("backend read %q, %v", got, err)
	}
	backend.Write([]byte("late answer"))
	backend.Close()
	reply, err := io.ReadAll(user)
	if err != nil || string(reply) != "late answer" {
		t.Fatalf("user read %q, %v", reply, err)
	}
	r := <-done
	if r.err != nil || r.in != 7 || r.out != 11 {
		t.Fatalf("splice: in=%d out=%d err=%v", r.in, r.out, r.err)
	}
}

// TestIdleConnectionsHoldNoBuffer: connections that moved bytes both ways and wait hold no
// copy buffer (each direction takes one when bytes are there and gives it back once written),
// so idle connections cost their goroutines and sockets only.
func TestIdleConnectionsHoldNoBuffer(t *testing.T) {
	countBuffers.Store(true)
	defer countBuffers.Store(false)
	before := buffersOut.Load()
	type conns struct{ user, backend net.Conn }
	var all []conns
	for range 10 {
		user, proxyFront := testutil.Pair(t)
		proxyBack, backend := testutil.Pair(t)
		SpliceThen(proxyFront, proxyBack, time.Minute, func(int64, int64, error) {})
		for _, w := range []struct{ from, to net.Conn }{{user, backend}, {backend, user}} {
			w.from.Write([]byte("ping"))
			got := make([]byte, 4)
			if _, err := io.ReadFull(w.to, got); err != nil || string(got) != "ping" {
				t.Fatalf("read %q, %v", got, err)
			}
		}
		all = append(all, conns{user, backend})
	}
	testutil.WaitFor(t, "the idle connections to give their buffers back", 5*time.Second, func() bool { return buffersOut.Load() == before })
	for _, c := range all {
		c.user.Close()
		c.backend.Close()
	}
}

// TestSpliceIdle: nothing moving either way for the idle timeout ends the connection; traffic
// in one direction keeps it alive.
func TestSpliceIdle(t *testing.T) {
	user, proxyFront := testutil.Pair(t)
	proxyBack, backend := testutil.Pair(t)
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, _, err := Splice(proxyFront, proxyBack, 200*time.Millisecond)
		done <- err
	}()
	// Backend streams to the user for 600ms: longer than the idle timeout, but never idle.
	go func() {
		for range 12 {
			backend.Write([]byte("x"))
			time.Sleep(50 * time.Millisecond)
		}
	}()
	buf := make([]byte, 16)
	n := 0
	for n < 12 {
		k, err := user.Read(buf)
		if err != nil {
			t.Fatalf("read after %d bytes: %v", n, err)
		}
		n += k
	}
	err := <-done
	if !errors.Is(err, errIdle) {
		t.Fatalf("got %v; want idle timeout", err)
	}
	if d := time.Since(start); d < 600*time.Millisecond || d > 10*time.Second {
		t.Fatalf("idle close after %v; want after the 0.6s of traffic and well before 10s", d)
	}
}

func TestTrackerShutdown(t *testing.T) {
	var tr Tracker
	a, _ := testutil.Pair(t)
	tr.Add(a)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if n := tr.Shutdown(ctx); n != 1 {
		t.Fatalf("force-closed %d; want 1", n)
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("connection still open after forced shutdown")
	}
	tr.Remove(a)
	if n := tr.Shutdown(context.Background()); n != 0 || tr.Len() != 0 {
		t.Fatalf("empty tracker: %d %d", n, tr.Len())
	}
}

// A backend that reads the client's request and closes without an answer ends the connection
// with ErrUpstreamClosed; one that answers and then closes ends it cleanly.
func TestSpliceUpstreamClosedUnanswered(t *testing.T) {
	for _, answer := range []bool{false, true} {
		user, proxyFront := testutil.Pair(t)
		proxyBack, backend := testutil.Pair(t)
		go func() {
			buf := make([]byte, 16)
			backend.Read(buf)
			if answer {
				backend.Write([]byte("ok"))
			}
			backend.Close()
		}()
		go func() {
			user.Write([]byte("request"))
			io.Copy(io.Discard, user)
			user.Close()
		}()
		_, _, err := Splice(proxyFront, proxyBack, time.Minute)
		if answer && err != nil {
			t.Fatalf("answered: %v", err)
		}
		if !answer && !errors.Is(err, ErrUpstreamClosed) {
			t.Fatalf("unanswered: %v; want ErrUpstreamClosed", err)
		}
	}
}
