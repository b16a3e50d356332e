// Command tlsbench measures sni-router side by side with sniproxy, nginx stream ssl_preread and
// HAProxy req.ssl_sni (all from Debian), with direct connections as the ceiling, in one run:
//
//   - full TLS handshakes per second (no resumption), many clients: connect, handshake, close;
//   - bulk throughput over one TLS connection the backend streams into.
//
// The backend is a Go crypto/tls server in this process; every router forwards the name
// bench.example.com to it. bench/run.sh -tls runs it.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/slardar-go/slardar/bench/internal/proc"
)

const serverName = "bench.example.com"

func main() {
	bin := flag.String("router", "bin/sni-router", "sni-router binary")
	duration := flag.Duration("duration", 5*time.Second, "length of each run")
	rounds := flag.Int("rounds", 2, "rounds; the best is reported")
	clients := flag.Int("clients", 32, "concurrent clients for handshakes")
	flag.Parse()
	if err := run(*bin, *duration, *rounds, *clients); err != nil {
		fmt.Fprintln(os.Stderr, "tlsbench:", err)
		os.Exit(1)
	}
}

type path struct {
	name string
	port int
}

func run(bin string, d time.Duration, rounds, clients int) error {
	dir, err := os.MkdirTemp("", "tlsbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	backend, stopBackend, err := tlsBackend()
	if err != nil {
		return err
	}
	defer stopBackend()

	paths := []path{{"direct", backend}}
	for _, p := range []struct {
		name  string
		start func(dir string, port, backend int) *exec.Cmd
	}{{"sni-router", func(dir string, port, backend int) *exec.Cmd { return sniRouter(bin, dir, port, backend) }},
		{"sniproxy", sniproxy}, {"nginx ssl_preread", nginx}, {"haproxy req.ssl_sni", haproxy}} {
		sub := filepath.Join(dir, strings.Fields(p.name)[0])
		os.MkdirAll(sub, 0o755)
		port := proc.Port()
		cmd := p.start(sub, port, backend)
		if err := proc.StartLogged(cmd, filepath.Join(sub, "log")); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		defer proc.Stop(cmd)
		if err := proc.WaitPort(port); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		paths = append(paths, path{p.name, port})
	}
	rows := []struct {
		name, unit string
		measure    func(port int) (float64, error)
	}{
		{fmt.Sprintf("full TLS handshakes (%d clients)", clients), "hs/s", func(port int) (float64, error) { return handshakes(port, clients, d) }},
		{"bulk throughput (1 TLS stream)", "Gbit/s", func(port int) (float64, error) { return bulk(port, d) }},
	}
	var names []string
	for _, p := range paths {
		names = append(names, p.name)
	}
	fmt.Printf("| measurement | unit | %s | router/direct | router/sniproxy | router/nginx | router/haproxy |\n", strings.Join(names, " | "))
	fmt.Printf("|---|---|%s---|---|---|---|\n", strings.Repeat("---|", len(paths)))
	for _, r := range rows {
		best, err := proc.Best(r.name, r.unit, names, rounds, func(i int) (float64, error) { return r.measure(paths[i].port) })
		if err != nil {
			return err
		}
		var cells []string
		for _, v := range best {
			cells = append(cells, strconv.FormatFloat(v, 'f', 2, 64))
		}
		fmt.Printf("| %s | %s | %s | %.2f | %.2f | %.2f | %.2f |\n", r.name, r.unit, strings.Join(cells, " | "),
			best[1]/best[0], best[1]/best[2], best[1]/best[3], best[1]/best[4])
	}
	return nil
}

// tlsBackend serves TLS for serverName: after the handshake, a 'b' byte makes it stream data
// until the client closes; anything else closes.
func tlsBackend() (int, func(), error) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: serverName}, DNSNames: []string{serverName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return 0, nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, SessionTicketsDisabled: true}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		return 0, nil, err
	}
	go func() {
		chunk := make([]byte, 64<<10)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b := make([]byte, 1)
				if _, err := c.Read(b); err != nil || b[0] != 'b' {
					return
				}
				for {
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, func() { ln.Close() }, nil
}

func clientConfig() *tls.Config {
	return &tls.Config{ServerName: serverName, InsecureSkipVerify: true, ClientSessionCache: nil}
}

// handshakes counts full handshakes per second over d with n concurrent clients.
func handshakes(port, n int, d time.Duration) (float64, error) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return proc.Rate(n, d, "handshakes", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := (&tls.Dialer{Config: clientConfig()}).DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		c.Write([]byte("c"))
		return c.Close()
	})
}

// bulk reads what the backend streams over one TLS connection for d.
func bulk(port int, d time.Duration) (float64, error) {
	c, err := tls.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), clientConfig())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := c.Write([]byte("b")); err != nil {
		return 0, err
	}
	c.SetReadDeadline(time.Now().Add(d))
	n, _ := io.Copy(io.Discard, c)
	return float64(n) * 8 / d.Seconds() / 1e9, nil
}

func sniRouter(bin, dir string, port, backend int) *exec.Cmd {
	cfg := fmt.Sprintf("log: {level: info}\nhttp: {listen: \"\"}\nadmin: {listen: 127.0.0.1:%d}\nlisten: [127.0.0.1:%d]\n"+
		"upstreams:\n  bench: {cluster: [{servers: [{host: 127.0.0.1, port: %d}]}]}\n"+
		"routes:\n  %s: {upstream: bench}\n", proc.Port(), port, backend, serverName)
	p := filepath.Join(dir, "sni-router.yaml")
	os.WriteFile(p, []byte(cfg), 0o644)
	return exec.Command(bin, "--config", p)
}

func sniproxy(dir string, port, backend int) *exec.Cmd {
	cfg := fmt.Sprintf(`user root
pidfile %[1]s/sniproxy.pid
error_log {
    filename %[1]s/error.log
}
listener 127.0.0.1:%[2]d {
    protocol tls
    table bench
}
table bench {
    %[3]s 127.0.0.1:%[4]d
}
`, dir, port, strings.ReplaceAll(serverName, ".", `\.`), backend)
	p := filepath.Join(dir, "sniproxy.conf")
	os.WriteFile(p, []byte(cfg), 0o644)
	return exec.Command("sniproxy", "-f", "-c", p)
}

func nginx(dir string, port, backend int) *exec.Cmd {
	conf := fmt.Sprintf(`load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 2;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 16384; }
stream {
  map $ssl_preread_server_name $backend { %[4]s 127.0.0.1:%[3]d; default 127.0.0.1:1; }
  server { listen 127.0.0.1:%[2]d; ssl_preread on; proxy_pass $backend; }
}
`, dir, port, backend, serverName)
	p := filepath.Join(dir, "nginx.conf")
	os.WriteFile(p, []byte(conf), 0o644)
	return exec.Command("nginx", "-c", p, "-p", dir, "-e", filepath.Join(dir, "error.log"))
}

func haproxy(dir string, port, backend int) *exec.Cmd {
	cfg := fmt.Sprintf(`global
  maxconn 8000
  nbthread 2
defaults
  mode tcp
  timeout connect 5s
  timeout client 1m
  timeout server 1m
frontend f
  bind 127.0.0.1:%d
  tcp-request inspect-delay 5s
  tcp-request content accept if { req.ssl_hello_type 1 }
  use_backend b if { req.ssl_sni -i %s }
backend b
  server s1 127.0.0.1:%d
`, port, serverName, backend)
	p := filepath.Join(dir, "haproxy.cfg")
	os.WriteFile(p, []byte(cfg), 0o644)
	return exec.Command("haproxy", "-f", p, "-db")
}
