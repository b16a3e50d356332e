package daemon

import (
	"net"
	"testing"
)

// A bare ":PORT" listens on every interface, which start-up says loudly.
func TestEveryInterface(t *testing.T) {
	for _, tt := range []struct {
		addr string
		want bool
	}{
		{"0.0.0.0:3131", true}, {"[::]:3131", true}, {"127.0.0.1:3131", false}, {"[::1]:3131", false}, {"10.1.2.3:443", false},
	} {
		a, err := net.ResolveTCPAddr("tcp", tt.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := everyInterface(a); got != tt.want {
			t.Errorf("everyInterface(%s) = %v", tt.addr, got)
		}
	}
}
