package checkups

import (
	"crypto/md5"
	"encoding/binary"
	"sort"
	"strconv"
)

// Ring kinds.
const (
	RingCheckups = "checkups" // default: lua-resty-checkups' arithmetic, key→server mappings kept
	RingKetama   = "ketama"   // md5 points, 160 per unit of weight: even, weight-proportional
)

// replicas is the checkups ring's points per unit of weight.
const replicas = 20

// hashString is checkups' string hash: h = h*31 + byte, modulo 2^32.
func hashString(s string) uint32 {
	var h uint32
	for i := 0; i < len(s); i++ {
		h = h*31 + uint32(s[i])
	}
	return h
}

type ringPoint struct {
	point uint32
	index int // server index in the level
}

// buildRing places, for server i, points hash("host:port")*c*13 for c = 1..N_i, as checkups does.
// checkups gives every server N = 20*Σweight points, so weights do not change the share; here
// N_i = 20*n*weight_i (n servers), which is the same N whenever all weights are equal — so the
// original's key→server mapping is kept — and proportional to weight otherwise.
func buildRing(servers []Server) []ringPoint {
	n := len(servers)
	var ring []ringPoint
	for i, s := range servers {
		base := hashString(s.Addr())
		count := replicas * n * max(s.Weight, 1)
		for c := 1; c <= count; c++ {
			ring = append(ring, ringPoint{point: base * uint32(c) * 13, index: i})
		}
	}
	sortRing(ring)
	return ring
}

// buildKetama places 160*weight points per server, four per md5("host:port-i") digest, as
// libketama does; keys are hashed with md5 too, so neighbouring addresses spread out.
func buildKetama(servers []Server) []ringPoint {
	var ring []ringPoint
	for i, s := range servers {
		for d := 0; d < 40*max(s.Weight, 1); d++ {
			sum := md5.Sum([]byte(s.Addr() + "-" + strconv.Itoa(d)))
			for k := 0; k < 4; k++ {
				ring = append(ring, ringPoint{point: binary.LittleEndian.Uint32(sum[k*4:]), index: i})
			}
		}
	}
	sortRing(ring)
	return ring
}

func ketamaKey(key string) uint32 {
	sum := md5.Sum([]byte(key))
	return binary.LittleEndian.Uint32(sum[:4])
}

func sortRing(ring []ringPoint) {
	sort.Slice(ring, func(a, b int) bool {
		if ring[a].point != ring[b].point {
			return ring[a].point < ring[b].point
		}
		return ring[a].index < ring[b].index
	})
}

// ringLookup finds the first point >= h, wrapping to the start, then walks the whole
// ring to the first server ok accepts. It returns -1 when none does.
func ringLookup(ring []ringPoint, h uint32, ok func(index int) bool) int {
	if len(ring) == 0 {
		return -1
	}
	start := sort.Search(len(ring), func(i int) bool { return ring[i].point >= h })
	if start == len(ring) {
		start = 0
	}
	for i := range ring {
		p := ring[(start+i)%len(ring)]
		if ok(p.index) {
			return p.index
		}
	}
	return -1
}
