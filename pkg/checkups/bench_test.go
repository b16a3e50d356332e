package checkups

import (
	"context"
	"testing"
)

func benchTry(b *testing.B, body string) {
	r := &Registry{DisableHeartbeatDefault: true}
	if err := r.PutJSON("u", []byte(body)); err != nil {
		b.Fatal(err)
	}
	ok := func(context.Context, Peer) error { return nil }
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := r.Try(ctx, "u", "192.168.1.77", ok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

const fourServers = `[{"servers":[{"host":"10.0.0.1","port":1},{"host":"10.0.0.2","port":1},{"host":"10.0.0.3","port":1,"weight":2},{"host":"10.0.0.4","port":1}]}]`

func BenchmarkTryRoundRobin(b *testing.B) { benchTry(b, `{"cluster":`+fourServers+`}`) }
func BenchmarkTryIPHash(b *testing.B)     { benchTry(b, `{"mode":"ip_hash","cluster":`+fourServers+`}`) }
func BenchmarkTryKetama(b *testing.B) {
	benchTry(b, `{"mode":"ip_hash","hash_ring":"ketama","cluster":`+fourServers+`}`)
}
func BenchmarkTryLeastConn(b *testing.B) {
	benchTry(b, `{"mode":"least_conn","cluster":`+fourServers+`}`)
}
