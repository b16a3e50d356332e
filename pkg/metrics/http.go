package metrics

import (
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Endpoint is a daemon's HTTP endpoint.
type Endpoint struct {
	ln  net.Listener
	srv *http.Server
}

// Serve listens on addr and serves /metrics (reg), /livez (200 while the process serves),
// /readyz (200 when ready returns nil, else 503 with its error) and, with pprof, the Go
// profiler under /debug/pprof/; extra are more paths (store-sync's /health), served from the
// first request on.
func Serve(addr string, reg *prometheus.Registry, ready func() error, withPprof bool, extra map[string]http.HandlerFunc) (*Endpoint, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http endpoint: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	for path, h := range extra {
		mux.HandleFunc(path, h)
	}
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	e := &Endpoint{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	go e.srv.Serve(ln)
	return e, nil
}

// Addr is the bound address.
func (e *Endpoint) Addr() string { return e.ln.Addr().String() }

// Close stops serving; a nil endpoint is off.
func (e *Endpoint) Close() {
	if e != nil {
		e.srv.Close()
	}
}
