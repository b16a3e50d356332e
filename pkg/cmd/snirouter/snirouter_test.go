package snirouter

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slardar-go/slardar/internal/testserver"
	"github.com/slardar-go/slardar/internal/testutil"
	"github.com/slardar-go/slardar/pkg/admin"
	"github.com/slardar-go/slardar/pkg/config"
)

// backends are openssl s_server processes, each with a certificate for its name.
var backends = map[string]int{}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "snirouter-test-")
	if err != nil {
		panic(err)
	}
	var procs []*exec.Cmd
	code := func() int {
		for _, name := range []string{"a.example.com", "b.example.com", "fallback.example.com", "capture.test"} {
			cert, key := writeCert(dir, name)
			port, _ := testserver.FreePort()
			cmd := exec.Command("openssl", "s_server", "-quiet", "-www", "-accept", "127.0.0.1:"+strconv.Itoa(port), "-cert", cert, "-key", key)
			if err := cmd.Start(); err != nil {
				fmt.Fprintln(os.Stderr, "openssl s_server:", err)
				return 1
			}
			procs = append(procs, cmd)
			backends[name] = port
		}
		for _, port := range backends {
			if err := waitPort(port); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	}()
	for _, p := range procs {
		p.Process.Kill()
		p.Wait()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func writeCert(dir, name string) (certPath, keyPath string) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kder, _ := x509.MarshalECPrivateKey(key)
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return certPath, keyPath
}

func waitPort(port int) error {
	for range 200 {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(25 * time.Millisecond)
	}
	return fmt.Errorf("port %d did not open", port)
}

// startRouter runs sni-router in-process with routes and upstreams given as YAML.
func startRouter(t *testing.T, yaml string) *Daemon {
	t.Helper()
	cfg, err := config.ParseSNI([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Listen = []string{"127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := Start(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), cfg, func() (*config.SNIFile, error) { return cfg, nil })
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(context.Background()); cancel() })
	return d
}

const baseConfig = `
checkups: {interval: 1s}
sni:
  allow: ["127.0.0.1:*"]
upstreams:
  a: {servers: [{host: 127.0.0.1, port: %d}]}
  b: {servers: [{host: 127.0.0.1, port: %d}]}
  fallback: {servers: [{host: 127.0.0.1, port: %d}]}
routes:
  a.example.com: {upstream: a}
  "*.example.com": {upstream: b}
  "~port-([0-9]+)\\.test": {target: "127.0.0.1:$1"}
`

func baseYAML(withDefault bool) string {
	y := fmt.Sprintf(baseConfig, backends["a.example.com"], backends["b.example.com"], backends["fallback.example.com"])
	if withDefault {
		y += "  default: {upstream: fallback}\n"
	}
	return y
}

// sClient returns the certificate subject openssl s_client sees through the router.
func sClient(t *testing.T, addr, name string) string {
	t.Helper()
	cmd := exec.Command("openssl", "s_client", "-connect", addr, "-servername", name)
	cmd.Stdin = strings.NewReader("")
	out, _ := cmd.CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if s, ok := strings.CutPrefix(line, "subject="); ok {
			return strings.TrimSpace(s)
		}
	}
	return string(out)
}

func TestRoutesWithOpenSSL(t *testing.T) {
	d := startRouter(t, baseYAML(true))
	addr := d.ListenerAddr("")
	tests := []struct {
		name, want string
	}{
		{name: "a.example.com", want: "CN = a.example.com"},                                      // exact
		{name: "x.example.com", want: "CN = b.example.com"},                                      // wildcard
		{name: "deep.x.example.com", want: "CN = fallback.example.com"},                          // one label only: default
		{name: "unknown.test", want: "CN = fallback.example.com"},                                // default
		{name: fmt.Sprintf("port-%d.test", backends["capture.test"]), want: "CN = capture.test"}, // regexp capture in the target
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sClient(t, addr, tt.name); got != tt.want {
				t.Fatalf("subject %q; want %q", got, tt.want)
			}
		})
	}
}

func TestCurlResolve(t *testing.T) {
	d := startRouter(t, baseYAML(false))
	_, port, _ := net.SplitHostPort(d.ListenerAddr(""))
	out, err := exec.Command("curl", "-sv", "-k", "--max-time", "5", "--resolve", "a.example.com:"+port+":127.0.0.1",
		"https://a.example.com:"+port+"/").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "subject: CN=a.example.com") || !strings.Contains(string(out), "200 ok") {
		t.Fatalf("curl: %v\n%s", err, out)
	}
}

func TestUnmatchedGetsUnrecognizedName(t *testing.T) {
	d := startRouter(t, baseYAML(false))
	cmd := exec.Command("openssl", "s_client", "-connect", d.ListenerAddr(""), "-servername", "nowhere.test")
	cmd.Stdin = strings.NewReader("")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "unrecognized name") {
		t.Fatalf("want an unrecognized_name alert:\n%s", out)
	}
}

// rawBackend accepts one connection and returns everything it receives.
func rawBackend(t *testing.T) (int, <-chan []byte) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		got <- b
	}()
	return ln.Addr().(*net.TCPAddr).Port, got
}

// helloBytes captures what crypto/tls sends first for a name, optionally padded to size.
func helloBytes(t *testing.T, name string, alpn []string) []byte {
	t.Helper()
	a, b := net.Pipe()
	go func() {
		tls.Client(a, &tls.Config{ServerName: name, NextProtos: alpn, InsecureSkipVerify: true}).Handshake()
		a.Close()
	}()
	b.SetReadDeadline(time.Now().Add(2 * time.Second))
	hdr := make([]byte, 5)
	io.ReadFull(b, hdr)
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	io.ReadFull(b, body)
	b.Close()
	return append(hdr, body...)
}

// reframe splits the handshake message of a single-record hello into records of size bytes,
// and can grow it with a padding extension to reach total message bytes.
func reframe(rec []byte, size, pad int) []byte {
	msg := append([]byte(nil), rec[5:]...)
	if pad > 0 {
		// append a padding extension (type 21) and fix the three lengths
		ext := append([]byte{0, 21, byte(pad >> 8), byte(pad)}, make([]byte, pad)...)
		msg = append(msg, ext...)
		n := len(msg) - 4
		msg[1], msg[2], msg[3] = byte(n>>16), byte(n>>8), byte(n)
		// extensions length sits right after the compression methods
		p := 4 + 2 + 32
		p += 1 + int(msg[p])
		p += 2 + (int(msg[p])<<8 | int(msg[p+1]))
		p += 1 + int(msg[p])
		el := (int(msg[p])<<8 | int(msg[p+1])) + len(ext)
		msg[p], msg[p+1] = byte(el>>8), byte(el)
	}
	var out []byte
	for len(msg) > 0 {
		k := min(size, len(msg))
		out = append(out, 0x16, 3, 1, byte(k>>8), byte(k))
		out = append(out, msg[:k]...)
		msg = msg[k:]
	}
	return out
}

// TestHelloShapes sends hellos in awkward shapes and checks the backend receives every byte,
// untouched: one byte per TCP write, split over two records, 10 KiB; and what happens to plain
// HTTP and garbage with and without a default route.
func TestHelloShapes(t *testing.T) {
	tests := []struct {
		name        string
		data        func(name string) []byte
		oneByte     bool
		withDefault bool
		routed      bool
	}{
		{name: "1-byte writes", data: func(n string) []byte { return helloBytes(t, n, nil) }, oneByte: true, routed: true},
		{name: "two records", data: func(n string) []byte { h := helloBytes(t, n, nil); return reframe(h, (len(h)-5)/2+1, 0) }, routed: true},
		{name: "10 KiB hello", data: func(n string) []byte { return reframe(helloBytes(t, n, []string{"h2"}), 16384, 10<<10) }, routed: true},
		{name: "plain HTTP, no default", data: func(string) []byte { return []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n") }},
		{name: "garbage, no default", data: func(string) []byte { return []byte{0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3} }},
		{name: "plain HTTP to the default", data: func(string) []byte { return []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n") }, withDefault: true, routed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, got := rawBackend(t)
			yaml := "sni: {allow: [\"127.0.0.1:*\"], hello_timeout: 2s}\nroutes:\n  \"~port-([0-9]+)\\\\.test\": {target: \"127.0.0.1:$1\"}\n"
			if tt.withDefault {
				yaml += fmt.Sprintf("  default: {target: \"127.0.0.1:%d\"}\n", port)
			}
			d := startRouter(t, yaml)
			data := tt.data(fmt.Sprintf("port-%d.test", port))
			c, err := net.Dial("tcp", d.ListenerAddr(""))
			if err != nil {
				t.Fatal(err)
			}
			if tt.oneByte {
				c.(*net.TCPConn).SetNoDelay(true)
				for i := range data {
					c.Write(data[i : i+1])
				}
			} else {
				c.Write(data)
			}
			time.Sleep(200 * time.Millisecond)
			c.Close()
			if !tt.routed {
				c2, _ := net.Dial("tcp", d.ListenerAddr(""))
				c2.Close()
				select {
				case b := <-got:
					t.Fatalf("backend received %d bytes for an unroutable connection", len(b))
				case <-time.After(300 * time.Millisecond):
				}
				return
			}
			if b := <-got; !bytes.Equal(b, data) {
				t.Fatalf("backend received %d bytes; want the %d sent, untouched", len(b), len(data))
			}
		})
	}
}

func TestProxyProtocolAndAdminRoutes(t *testing.T) {
	d := startRouter(t, "sni: {allow: [\"127.0.0.1:*\"]}\n")
	port, got := rawBackend(t)
	ctx := context.Background()
	c, err := admin.Dial(ctx, d.AdminAddr(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := fmt.Sprintf(`{"target":"127.0.0.1:%d","proxy_protocol":2}`, port)
	if r, err := c.Do(ctx, "PUT", "route", "pp.example.com", []byte(body)); err != nil || r.Type != admin.TypeOK {
		t.Fatalf("PUT route: %v %s", err, r.Data)
	}
	if r, _ := c.Do(ctx, "GET", "route", "info", nil); !strings.Contains(string(r.Data), `"pp.example.com":{"target":"127.0.0.1:`) {
		t.Fatalf("GET route info: %s", r.Data)
	}
	// A literal target outside the allow-list is refused when put (issue 15), not when dialled.
	if r, _ := c.Do(ctx, "PUT", "route", "x", []byte(`{"target":"10.0.0.1:22"}`)); r.Type != admin.TypeError || string(r.Data) != "target 10.0.0.1:22 is not in the allow-list (sni.allow)" {
		t.Fatalf("PUT a target route outside the allow-list: %d %s", r.Type, r.Data)
	}
	if r, _ := c.Do(ctx, "DELETE", "route", "nope", nil); string(r.Data) != "route nope not found" {
		t.Fatalf("DELETE missing: %s", r.Data)
	}
	hello := helloBytes(t, "pp.example.com", nil)
	conn, err := net.Dial("tcp", d.ListenerAddr(""))
	if err != nil {
		t.Fatal(err)
	}
	conn.Write(hello)
	time.Sleep(200 * time.Millisecond)
	conn.Close()
	b := <-got
	sig := []byte("\r\n\r\n\x00\r\nQUIT\n")
	if !bytes.HasPrefix(b, sig) || b[12] != 0x21 || b[13] != 0x11 || !bytes.Equal(b[28:], hello) {
		t.Fatalf("backend got %x", b[:min(len(b), 40)])
	}
	src := net.IP(b[16:20]).String()
	if src != "127.0.0.1" || int(b[26])<<8|int(b[27]) != d.listenPort(t) {
		t.Fatalf("PROXY header addresses: src %s, dst port %d", src, int(b[26])<<8|int(b[27]))
	}
}

func (d *Daemon) listenPort(t *testing.T) int {
	_, p, _ := net.SplitHostPort(d.ListenerAddr(""))
	n, _ := strconv.Atoi(p)
	return n
}

// TestReloadAndAccessLog: a reload replaces the file's routes (admin-set ones stay) and each
// connection's access-log line names the server name and the route.
func TestReloadAndAccessLog(t *testing.T) {
	yaml := baseYAML(false)
	var logs testutil.SyncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	load := func() (*config.SNIFile, error) {
		cfg, err := config.ParseSNI([]byte(yaml))
		if err != nil {
			return nil, err
		}
		cfg.Admin.Listen, cfg.Listen = "127.0.0.1:0", []string{"127.0.0.1:0"}
		return cfg, nil
	}
	cfg, err := load()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Start(ctx, slog.New(slog.NewTextHandler(&logs, nil)), cfg, load)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(context.Background()); cancel() })
	c, err := admin.Dial(ctx, d.AdminAddr(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Do(ctx, "PUT", "route", "admin.example.org", []byte(`{"upstream":"a"}`)); err != nil {
		t.Fatal(err)
	}
	addr := d.ListenerAddr("")
	if got := sClient(t, addr, "a.example.com"); got != "CN = a.example.com" {
		t.Fatalf("before reload: %q", got)
	}
	yaml = strings.Replace(yaml, "a.example.com: {upstream: a}", "a.example.com: {upstream: b}", 1)
	if err := d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if got := sClient(t, addr, "a.example.com"); got != "CN = b.example.com" {
		t.Fatalf("after reload: %q", got)
	}
	if got := sClient(t, addr, "admin.example.org"); got != "CN = a.example.com" {
		t.Fatalf("admin-set route after reload: %q", got)
	}
	if !strings.Contains(logs.String(), "sni=a.example.com route=a.example.com") {
		t.Fatalf("access log lacks sni and route:\n%s", logs.String())
	}
}

// The router's commands are the protocol's command table, so slardarctl knows which carry a body.
func TestCommandsAreKnown(t *testing.T) {
	d := startRouter(t, "")
	specs := d.Mux.Specs()
	if len(specs) < 7 {
		t.Fatalf("only %d commands registered: %v", len(specs), specs)
	}
	for _, s := range specs {
		if body, known := admin.CarriesBody(s.Method, s.Topic); !known || body != s.Body {
			t.Errorf("%s %s (body %v) is not in admin.Known as served", s.Method, s.Topic, s.Body)
		}
	}
}

// TestNoSelfLoop (issue 15): with the talk's default route ($sni:$server_port) and an allow-list
// that includes the router's own address, a client asking for the router's own address made
// 123 chained self-connections until file descriptors ran out. The dial that reaches the
// router itself is refused (outcome=loop) and nothing chains.
func TestNoSelfLoop(t *testing.T) {
	var logs testutil.SyncBuffer
	cfg, err := config.ParseSNI([]byte("sni: {allow: [\"127.0.0.1:*\"]}\nroutes: {default: {target: \"$sni:$server_port\"}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Admin.Listen, cfg.Listen = "127.0.0.1:0", []string{"127.0.0.1:0"}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := Start(ctx, slog.New(slog.NewTextHandler(&logs, nil)), cfg, nil)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(context.Background()); cancel() })
	start := time.Now()
	sClient(t, d.ListenerAddr(""), "127.0.0.1")
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("s_client took %v", took)
	}
	testutil.WaitFor(t, "the loop to be refused", 5*time.Second, func() bool { return strings.Contains(logs.String(), "outcome=loop") })
	time.Sleep(300 * time.Millisecond)
	if n := strings.Count(logs.String(), "msg=conn"); n > 3 {
		t.Fatalf("%d connections for one client: the router chained to itself\n%s", n, logs.String())
	}
}

// TestRouteMetrics: sni-router's routing shows in slardar_sni_routes_total, routed by pattern and
// refused by reason (no route, no readable hello), with the common metrics beside it.
func TestRouteMetrics(t *testing.T) {
	cfg, err := config.ParseSNI([]byte(baseYAML(false)))
	if err != nil {
		t.Fatal(err)
	}
	web := "127.0.0.1:0"
	cfg.Admin.Listen, cfg.Listen, cfg.HTTP.Listen = "127.0.0.1:0", []string{"127.0.0.1:0"}, &web
	ctx, cancel := context.WithCancel(context.Background())
	d, err := Start(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), cfg, func() (*config.SNIFile, error) { return cfg, nil })
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Shutdown(context.Background()); cancel() })
	addr := d.ListenerAddr("")
	sClient(t, addr, "a.example.com")
	sClient(t, addr, "nowhere.test")
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Write([]byte("GET / HTTP/1.0\r\n\r\n")) // not TLS
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		io.Copy(io.Discard, c)
		c.Close()
	}
	testutil.WaitFor(t, "routing counted", 5*time.Second, func() bool {
		m := testutil.Scrape(t, d.HTTPAddr())
		routed, _ := m.Value("slardar_sni_routes_total", map[string]string{"route": "a.example.com", "result": "routed"})
		noRoute, _ := m.Value("slardar_sni_routes_total", map[string]string{"route": "", "result": "no_route"})
		bad, _ := m.Value("slardar_sni_routes_total", map[string]string{"route": "", "result": "bad_hello"})
		conns, _ := m.Value("slardar_connections_total", map[string]string{"upstream": "a", "outcome": "ok"})
		return routed == 1 && noRoute == 1 && bad == 1 && conns == 1
	})
}
