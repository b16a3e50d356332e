package checkups

import (
	"bufio"
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

var statusLineRE = regexp.MustCompile(`^HTTP/\d+\.\d+\s+(\d+)`)

func TestParseStatusLine(t *testing.T) {
	for _, line := range []string{"HTTP/1.1 200 OK\r\n", "HTTP/1.0   404\n", "HTTP/2.0\t503 x", "HTTP/1 200", "HTTP/1.1200", "http/1.1 200", "HTTP/1.1 \r\n", ""} {
		code, ok := parseStatusLine(line)
		m := statusLineRE.FindStringSubmatch(line)
		if ok != (m != nil) || (ok && code != m[1]) {
			t.Errorf("parseStatusLine(%q) = %q, %v; regexp says %v", line, code, ok, m)
		}
	}
}

// FuzzParseStatusLine holds the hand-written parser to the original's pattern.
func FuzzParseStatusLine(f *testing.F) {
	for _, s := range []string{"HTTP/1.1 200 OK", "HTTP/1.0 \t 5", "HTTP/9.99 0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		code, ok := parseStatusLine(line)
		m := statusLineRE.FindStringSubmatch(line)
		if ok != (m != nil) || (ok && code != m[1]) {
			t.Fatalf("parseStatusLine(%q) = %q, %v; regexp says %q", line, code, ok, m)
		}
	})
}

func FuzzReadRESP(f *testing.F) {
	for _, s := range []string{"+PONG\r\n", "-ERR x\r\n", "$5\r\nhello\r\n", "$-1\r\n", "$99999999999\r\n", ":1\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		s, err := readRESP(bufio.NewReader(strings.NewReader(data)))
		if err == nil && len(s) > len(data) {
			t.Fatalf("reply longer than input: %d > %d", len(s), len(data))
		}
	})
}

func TestCheckRedis(t *testing.T) {
	tests := []struct {
		name       string
		masterLink string
		want       Status
	}{
		{name: "replica with link up", masterLink: "up", want: StatusOK},
		{name: "replica with link down", masterLink: "down", want: StatusUnstable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(2 * time.Second))
				r := bufio.NewReader(c)
				bulk := func(s string) string { return "$" + itoa(len(s)) + "\r\n" + s + "\r\n" }
				for _, reply := range []string{
					"+PONG\r\n",
					bulk("# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\nmaster_link_status:" + tt.masterLink + "\r\n"),
					bulk("# Server\r\nredis_version:7.0.15\r\n"),
				} {
					// Read one RESP array command: *N then N bulk strings (2 lines each).
					line, _ := r.ReadString('\n')
					n := int(line[1] - '0')
					for range 2 * n {
						r.ReadString('\n')
					}
					c.Write([]byte(reply))
				}
			}()
			srv := Server{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port}
			res := check(context.Background(), &Upstream{Typ: TypRedis, Timeout: 2}, "", srv)
			if res.status != tt.want || res.extra["redis_version"] != "7.0.15" {
				t.Fatalf("got %+v", res)
			}
			if repl := res.extra["replication"].(map[string]any); repl["role"] != "slave" || repl["master_link_status"] != tt.masterLink {
				t.Fatalf("replication %+v", repl)
			}
		})
	}
}
