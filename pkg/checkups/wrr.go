package checkups

// wrrState is nginx's smooth weighted round robin state for one server.
type wrrState struct {
	weight    int
	effective int
	current   int
}

// wrrPick picks among the servers ok accepts, nginx-style: every candidate's current weight
// grows by its effective weight (which recovers by 1 per pick after a failure halved it), the
// largest current wins and gives back the total. It returns -1 when no server is acceptable.
func wrrPick(state []wrrState, ok func(index int) bool) int {
	best, total := -1, 0
	for i := range state {
		if !ok(i) {
			continue
		}
		s := &state[i]
		s.current += s.effective
		total += s.effective
		if s.effective < s.weight {
			s.effective++
		}
		if best < 0 || s.current > state[best].current {
			best = i
		}
	}
	if best >= 0 {
		state[best].current -= total
	}
	return best
}

// wrrFail halves a failed server's effective weight (rounding up), as checkups' free_server does.
func wrrFail(s *wrrState) {
	s.effective = (s.effective + 1) / 2
}

func newWRR(servers []Server) []wrrState {
	st := make([]wrrState, len(servers))
	for i, s := range servers {
		w := max(s.Weight, 1)
		st[i] = wrrState{weight: w, effective: w}
	}
	return st
}
