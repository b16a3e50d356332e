package checkups

import (
	"math"
	"strings"
	"testing"
)

func TestWRRSequences(t *testing.T) {
	tests := []struct {
		name    string
		weights []int
		want    string
	}{
		// The sequence nginx documents for weights 5, 1, 1.
		{name: "nginx 5-1-1", weights: []int{5, 1, 1}, want: "aabacaa" + "aabacaa"},
		{name: "equal", weights: []int{1, 1}, want: "abababab"},
		{name: "2-1", weights: []int{2, 1}, want: "abaaba"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			servers := make([]Server, len(tt.weights))
			for i, w := range tt.weights {
				servers[i] = Server{Weight: w}
			}
			st := newWRR(servers)
			var got strings.Builder
			for range len(tt.want) {
				got.WriteByte(byte('a' + wrrPick(st, func(int) bool { return true })))
			}
			if got.String() != tt.want {
				t.Fatalf("got %s; want %s", got.String(), tt.want)
			}
		})
	}
}

func TestWRRFailureHalvesAndRecovers(t *testing.T) {
	st := newWRR([]Server{{Weight: 4}, {Weight: 4}})
	wrrFail(&st[0])
	if st[0].effective != 2 {
		t.Fatalf("effective after failure = %d; want 2", st[0].effective)
	}
	wrrPick(st, func(int) bool { return true })
	wrrPick(st, func(int) bool { return true })
	if st[0].effective != 4 {
		t.Fatalf("effective after two picks = %d; want 4 (recovers by 1 per pick)", st[0].effective)
	}
	if i := wrrPick(st, func(i int) bool { return i == 1 }); i != 1 {
		t.Fatalf("picked %d with only 1 acceptable", i)
	}
	if i := wrrPick(st, func(int) bool { return false }); i != -1 {
		t.Fatalf("picked %d with none acceptable", i)
	}
}

// origRing is lua-resty-checkups' ring, computed as LuaJIT does it: in doubles, 20*Σweight points
// per server, point = (hash*c*13) % 2^32.
func origRing(servers []Server) []ringPoint {
	hash := func(s string) float64 {
		h := 0.0
		for i := 0; i < len(s); i++ {
			h = math.Mod(h*31+float64(s[i]), 4294967296)
		}
		return h
	}
	wsum := 0
	for _, s := range servers {
		wsum += s.Weight
	}
	var ring []ringPoint
	for i, s := range servers {
		base := hash(s.Addr())
		for c := 1; c <= 20*wsum; c++ {
			ring = append(ring, ringPoint{point: uint32(math.Mod(base*float64(c)*13, 4294967296)), index: i})
		}
	}
	sortRing(ring)
	return ring
}

func TestRingMatchesOriginal(t *testing.T) {
	sets := [][]Server{
		{{Host: "127.0.0.1", Port: 3306, Weight: 1}, {Host: "127.0.0.1", Port: 3307, Weight: 1}},
		{{Host: "10.0.0.1", Port: 80, Weight: 1}, {Host: "10.0.0.2", Port: 80, Weight: 1}, {Host: "10.0.0.3", Port: 80, Weight: 1}},
		{{Host: "10.0.0.1", Port: 80, Weight: 3}, {Host: "10.0.0.2", Port: 80, Weight: 3}},
	}
	for _, servers := range sets {
		got, want := buildRing(servers), origRing(servers)
		if len(got) != len(want) {
			t.Fatalf("%v: %d points; want %d", servers, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%v: point %d = %+v; want %+v", servers, i, got[i], want[i])
			}
		}
		for k := 0; k < 2000; k++ {
			key := "192.168." + itoa(k/256) + "." + itoa(k%256)
			all := func(int) bool { return true }
			if a, b := ringLookup(got, hashString(key), all), ringLookup(want, hashString(key), all); a != b {
				t.Fatalf("key %s: server %d; original %d", key, a, b)
			}
		}
	}
}

// arcs is each server's share of the ring.
func arcs(ring []ringPoint, n int) []float64 {
	out := make([]float64, n)
	for i := range ring {
		prev := ring[(i-1+len(ring))%len(ring)].point
		out[ring[i].index] += float64(ring[i].point-prev) / (1 << 32)
	}
	return out
}

func TestRingWeights(t *testing.T) {
	servers := []Server{{Host: "127.0.0.1", Port: 3306, Weight: 3}, {Host: "127.0.0.1", Port: 3307, Weight: 1}}
	// checkups ring: points in proportion to weight (the original gave every server the same).
	counts := [2]int{}
	for _, p := range buildRing(servers) {
		counts[p.index]++
	}
	if counts[0] != 3*counts[1] || counts[1] != 40 {
		t.Fatalf("checkups ring points %v; want [120 40]", counts)
	}
	// ketama ring: the share of the ring follows the weights.
	if share := arcs(buildKetama(servers), 2)[0]; share < 0.65 || share > 0.85 {
		t.Fatalf("ketama: weight 3 of 4 owns %.2f of the ring; want about 0.75", share)
	}
	equal := []Server{{Host: "127.0.0.1", Port: 3306, Weight: 1}, {Host: "127.0.0.1", Port: 3307, Weight: 1}}
	if share := arcs(buildKetama(equal), 2)[0]; share < 0.4 || share > 0.6 {
		t.Fatalf("ketama: equal weights, first owns %.2f", share)
	}
}

func TestRingWalkSkipsUnusable(t *testing.T) {
	servers := []Server{{Host: "10.0.0.1", Port: 80, Weight: 1}, {Host: "10.0.0.2", Port: 80, Weight: 1}}
	for _, ring := range [][]ringPoint{buildRing(servers), buildKetama(servers)} {
		for k := 0; k < 100; k++ {
			if got := ringLookup(ring, ketamaKey(itoa(k)), func(i int) bool { return i == 1 }); got != 1 {
				t.Fatalf("walk did not skip the unusable server: %d", got)
			}
		}
		if got := ringLookup(ring, 1, func(int) bool { return false }); got != -1 {
			t.Fatalf("no usable server: got %d", got)
		}
	}
}
