package sni

import (
	"fmt"
	"net"
	"regexp"
	"strings"
)

// AllowList says which expanded targets may be dialled. Entries: "host:port" exactly,
// "*.domain:port" for any name under domain, "~regexp" against the whole host:port; a port of
// "*" matches any port. An empty list allows nothing.
type AllowList struct {
	entries []allowEntry
}

type allowEntry struct {
	host, port string // exact host or ".suffix"; port or "*"
	re         *regexp.Regexp
}

// ParseAllowList compiles allow-list entries.
func ParseAllowList(items []string) (*AllowList, error) {
	a := &AllowList{}
	for _, it := range items {
		if strings.HasPrefix(it, "~") {
			re, err := regexp.Compile(`^(?:` + it[1:] + `)$`)
			if err != nil {
				return nil, fmt.Errorf("allow %q: %v", it, err)
			}
			a.entries = append(a.entries, allowEntry{re: re})
			continue
		}
		host, port, err := net.SplitHostPort(it)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("allow %q: want HOST:PORT, *.DOMAIN:PORT or ~REGEXP (port may be *)", it)
		}
		host = strings.ToLower(host)
		if suffix, ok := strings.CutPrefix(host, "*."); ok {
			host = "." + suffix
		}
		a.entries = append(a.entries, allowEntry{host: host, port: port})
	}
	return a, nil
}

// Len is the number of entries.
func (a *AllowList) Len() int { return len(a.entries) }

// Allows reports whether hostport may be dialled.
func (a *AllowList) Allows(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	host = strings.ToLower(host)
	for _, e := range a.entries {
		if e.re != nil {
			if e.re.MatchString(hostport) {
				return true
			}
			continue
		}
		if e.port != "*" && e.port != port {
			continue
		}
		if e.host == host || (strings.HasPrefix(e.host, ".") && strings.HasSuffix(host, e.host) && len(host) > len(e.host)) {
			return true
		}
	}
	return false
}
