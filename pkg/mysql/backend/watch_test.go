package backend

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"testing"
	"time"
)

// TestWatchBelowTLS: a write whose deadline has passed (a session's command after a slow
// answer, long data bigger than the socket's buffers) is waited through below TLS and
// arrives; crypto/tls would have broken the connection for good on the timeout.
func TestWatchBelowTLS(t *testing.T) {
	cside, sside := net.Pipe()
	defer cside.Close()
	defer sside.Close()
	w := &watchConn{Conn: cside, active: true, alive: func() bool { return true }}
	client := tls.Client(w, &tls.Config{InsecureSkipVerify: true})
	server := tls.Server(sside, &tls.Config{Certificates: []tls.Certificate{testCert(t)}})
	go server.Handshake()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	// The deadline of the last command has passed: the next write must still go through.
	w.armed = time.Now().Add(-2 * watchSlice)
	w.Conn.SetDeadline(time.Now().Add(-time.Second))
	got := make(chan []byte, 2)
	go func() {
		time.Sleep(1500 * time.Millisecond) // the reader comes late: the write waits past a deadline
		for _, n := range []int{9, 1} {
			b := make([]byte, n)
			io.ReadFull(server, b)
			got <- b
		}
	}()
	if _, err := client.Write([]byte("COM_CLOSE")); err != nil {
		t.Fatalf("write through TLS after a deadline: %v", err)
	}
	if b := <-got; string(b) != "COM_CLOSE" {
		t.Fatalf("the server read %q", b)
	}
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatalf("the TLS connection broke: %v", err)
	}
	if b := <-got; string(b) != "x" {
		t.Fatalf("the server read %q", b)
	}
}

func testCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
