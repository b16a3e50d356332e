package sni

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// captureHello returns the first flight crypto/tls sends for the given name and ALPN.
func captureHello(t testing.TB, name string, alpn []string) []byte {
	t.Helper()
	client, server := net.Pipe()
	go func() {
		tls.Client(client, &tls.Config{ServerName: name, NextProtos: alpn, InsecureSkipVerify: true}).Handshake()
		client.Close()
	}()
	server.SetReadDeadline(time.Now().Add(2 * time.Second))
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(server, hdr); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[3:5]))
	if _, err := io.ReadFull(server, body); err != nil {
		t.Fatal(err)
	}
	server.Close()
	return append(hdr, body...)
}

// buildHello makes a ClientHello record by hand, with a padding extension of pad bytes.
func buildHello(name string, alpn []string, pad int) []byte {
	var ext []byte
	if name != "" {
		sn := append([]byte{0}, be16(len(name))...)
		sn = append(sn, name...)
		ext = append(ext, be16(extServerName)...)
		ext = append(ext, be16(len(sn)+2)...)
		ext = append(ext, be16(len(sn))...)
		ext = append(ext, sn...)
	}
	if len(alpn) > 0 {
		var l []byte
		for _, p := range alpn {
			l = append(l, byte(len(p)))
			l = append(l, p...)
		}
		ext = append(ext, be16(extALPN)...)
		ext = append(ext, be16(len(l)+2)...)
		ext = append(ext, be16(len(l))...)
		ext = append(ext, l...)
	}
	if pad > 0 {
		ext = append(ext, be16(21)...)
		ext = append(ext, be16(pad)...)
		ext = append(ext, make([]byte, pad)...)
	}
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = append(body, 0, 2, 0x13, 0x01)    // one cipher suite
	body = append(body, 1, 0)                // null compression
	body = append(body, be16(len(ext))...)
	body = append(body, ext...)
	msg := append([]byte{handshakeClientHi, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return frame(msg, 16384)
}

// frame wraps a handshake message in TLS records of at most size bytes each.
func frame(msg []byte, size int) []byte {
	var out []byte
	for len(msg) > 0 {
		n := min(size, len(msg))
		out = append(out, contentHandshake, 3, 1)
		out = append(out, be16(n)...)
		out = append(out, msg[:n]...)
		msg = msg[n:]
	}
	return out
}

func be16(n int) []byte { return []byte{byte(n >> 8), byte(n)} }

// unframe returns the handshake message of records.
func unframe(recs []byte) []byte {
	var msg []byte
	for len(recs) >= 5 {
		n := int(binary.BigEndian.Uint16(recs[3:5]))
		msg = append(msg, recs[5:5+n]...)
		recs = recs[5+n:]
	}
	return msg
}

func read(t *testing.T, data []byte, max int) (Hello, error) {
	t.Helper()
	r := bufio.NewReaderSize(bytes.NewReader(data), BufferSize(max))
	h, err := ReadHello(r, max)
	if err == nil {
		// Peeked, not consumed: the stream still starts with every byte.
		all, _ := io.ReadAll(r)
		if !bytes.Equal(all, data) {
			t.Fatalf("ReadHello consumed bytes: %d of %d left", len(all), len(data))
		}
	}
	return h, err
}

func TestReadHello(t *testing.T) {
	real := captureHello(t, "Backend.Example.COM", []string{"h2", "http/1.1"})
	tests := []struct {
		name string
		data []byte
		sni  string
		alpn []string
		err  error
	}{
		{name: "crypto/tls hello", data: real, sni: "backend.example.com", alpn: []string{"h2", "http/1.1"}},
		{name: "split over two records", data: frame(unframe(real), len(unframe(real))/2+1), sni: "backend.example.com", alpn: []string{"h2", "http/1.1"}},
		{name: "many small records", data: frame(unframe(real), 32), sni: "backend.example.com"},
		{name: "no SNI", data: captureHello(t, "", nil)},
		{name: "10 KiB hello", data: buildHello("big.example.com", []string{"h2"}, 10<<10), sni: "big.example.com", alpn: []string{"h2"}},
		{name: "over the limit", data: buildHello("big.example.com", nil, 20<<10), err: ErrHelloTooBig},
		{name: "plain HTTP", data: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), err: ErrNotTLS},
		{name: "garbage", data: []byte{0x16, 0x99, 0x01, 0x00, 0x10, 1, 2}, err: ErrNotTLS},
		{name: "truncated", data: real[:40], err: ErrBadHello},
		{name: "empty", data: nil, err: ErrNotTLS},
		{name: "bad name", data: buildHello("a b", nil, 0), err: ErrBadHello},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := read(t, tt.data, DefaultMaxHello)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("got %v; want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.ServerName != tt.sni || (tt.alpn != nil && !equal(h.ALPN, tt.alpn)) {
				t.Fatalf("got %q %q; want %q %q", h.ServerName, h.ALPN, tt.sni, tt.alpn)
			}
		})
	}
}

// TestReadHelloOneByteWrites: a hello arriving one byte per TCP write is reassembled.
func TestReadHelloOneByteWrites(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hello := captureHello(t, "slow.example.com", nil)
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		c.(*net.TCPConn).SetNoDelay(true)
		for i := range hello {
			c.Write(hello[i : i+1])
			if i%64 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		time.Sleep(time.Second)
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReaderSize(c, BufferSize(DefaultMaxHello))
	h, err := ReadHello(r, DefaultMaxHello)
	if err != nil || h.ServerName != "slow.example.com" {
		t.Fatalf("got %+v, %v", h, err)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzReadHello: arbitrary bytes never panic, never read past the limit, and a parsed hello
// never has a name outside the allowed characters.
func FuzzReadHello(f *testing.F) {
	f.Add(buildHello("a.example.com", []string{"h2"}, 0))
	f.Add(frame(unframe(buildHello("b.example.com", nil, 100)), 7))
	f.Add([]byte("GET / HTTP/1.0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(data), BufferSize(4096))
		h, err := ReadHello(r, 4096)
		if err == nil && !validName(h.ServerName) {
			t.Fatalf("invalid name accepted: %q", h.ServerName)
		}
	})
}
