package l4

import (
	"encoding/hex"
	"net"
	"testing"
)

func TestProxyHeader(t *testing.T) {
	v4src := &net.TCPAddr{IP: net.ParseIP("192.168.0.1"), Port: 56324}
	v4dst := &net.TCPAddr{IP: net.ParseIP("192.168.0.11"), Port: 443}
	v6src := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}
	v6dst := &net.TCPAddr{IP: net.ParseIP("::1"), Port: 2}
	tests := []struct {
		name     string
		version  int
		src, dst net.Addr
		want     string // text for v1, hex for v2
	}{
		{name: "v1 tcp4", version: 1, src: v4src, dst: v4dst, want: "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"},
		{name: "v1 tcp6", version: 1, src: v6src, dst: v6dst, want: "PROXY TCP6 2001:db8::1 ::1 1 2\r\n"},
		{name: "v2 tcp4", version: 2, src: v4src, dst: v4dst,
			want: "0d0a0d0a000d0a515549540a" + "21" + "11" + "000c" + "c0a80001" + "c0a8000b" + "dc04" + "01bb"},
		{name: "v2 tcp6", version: 2, src: v6src, dst: v6dst,
			want: "0d0a0d0a000d0a515549540a" + "21" + "21" + "0024" + "20010db8000000000000000000000001" + "00000000000000000000000000000001" + "0001" + "0002"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ProxyHeader(tt.version, tt.src, tt.dst)
			if err != nil {
				t.Fatal(err)
			}
			s := string(got)
			if tt.version == 2 {
				s = hex.EncodeToString(got)
			}
			if s != tt.want {
				t.Fatalf("got %q; want %q", s, tt.want)
			}
		})
	}
	if _, err := ProxyHeader(3, v4src, v4dst); err == nil {
		t.Fatal("version 3 accepted")
	}
}
