package script

import (
	"context"
	"testing"
	"time"

	"github.com/slardar-go/slardar/pkg/l4"
)

func benchPreread(b *testing.B, src string) {
	rt := &Runtime{Code: &Code{}, Dicts: &Dicts{}}
	rt.Dicts.Define("stream_limit_req_store", 10<<20)
	if err := rt.Code.Load("script.preread7000", []byte(src)); err != nil {
		b.Fatal(err)
	}
	ln := listenT(b)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		cx := &l4.Conn{Client: ln, Port: "7000", Start: time.Now()}
		if err := rt.Preread(context.Background(), cx); err != nil {
			b.Fatal(err)
		}
		rt.Log(cx)
	}
}

// BenchmarkPrereadNone is a connection on a port without scripts.
func BenchmarkPrereadNone(b *testing.B) {
	rt := &Runtime{Code: &Code{}, Dicts: &Dicts{}}
	ln := listenT(b)
	b.ReportAllocs()
	for range b.N {
		cx := &l4.Conn{Client: ln, Port: "7000"}
		rt.Preread(context.Background(), cx)
		rt.Log(cx)
	}
}

func BenchmarkPrereadTrivial(b *testing.B) { benchPreread(b, `local addr = ngx.var.remote_addr`) }

func BenchmarkPrereadLimitReq(b *testing.B) {
	benchPreread(b, `local limit_req = require "resty.limit.req"
local lim = limit_req.new("stream_limit_req_store", 1000000, 1000000)
local delay, err = lim:incoming(ngx.var.remote_addr, true)
if not delay then return ngx.exit(1) end`)
}
