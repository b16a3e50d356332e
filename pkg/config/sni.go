package config

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/slardar-go/slardar/pkg/sni"
)

// SNI configures sni-router's ClientHello reading and its target allow-list.
type SNI struct {
	HelloTimeout time.Duration `yaml:"hello_timeout"` // default 5s
	MaxHello     int           `yaml:"max_hello"`     // bytes, default 16384
	// Allow lists the targets a route's address template may expand to: "host:port",
	// "*.domain:port", "~regexp"; a port may be "*". Empty: target routes are refused.
	Allow []string `yaml:"allow"`
}

// SNIFile is sni-router's configuration file.
type SNIFile struct {
	Common `yaml:",inline"`
	Listen []string `yaml:"listen"` // data addresses, default ":443"
	SNI    SNI      `yaml:"sni"`
	// RawRoutes maps a pattern (name, *.domain, ~regexp, default) to a route:
	// {upstream: NAME} or {target: "$sni:443"}, optional alpn and proxy_protocol.
	RawRoutes map[string]any       `yaml:"routes"`
	Routes    map[string]sni.Route `yaml:"-"`
	AllowList *sni.AllowList       `yaml:"-"`
}

// ReadSNI reads sni-router's configuration file without compiling routes and the allow-list:
// flags may still add to them; Finish validates the result.
func ReadSNI(path string) (*SNIFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	f, err := decodeSNI(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return f, nil
}

// LoadSNI reads and validates sni-router's configuration file.
func LoadSNI(path string) (*SNIFile, error) {
	f, err := ReadSNI(path)
	if err != nil {
		return nil, err
	}
	if err := f.Finish(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return f, nil
}

// ParseSNI decodes and validates sni-router configuration bytes.
func ParseSNI(data []byte) (*SNIFile, error) {
	f, err := decodeSNI(data)
	if err != nil {
		return nil, err
	}
	if err := f.Finish(); err != nil {
		return nil, err
	}
	return f, nil
}

func decodeSNI(data []byte) (*SNIFile, error) {
	f := &SNIFile{}
	if err := DecodeStrict(data, f); err != nil {
		return nil, err
	}
	if err := f.Common.parse(); err != nil {
		return nil, err
	}
	return f, nil
}

// Finish compiles the allow-list and routes and checks the listen addresses (once the flags
// were applied).
func (f *SNIFile) Finish() error {
	var err error
	if f.AllowList, err = sni.ParseAllowList(f.SNI.Allow); err != nil {
		return fmt.Errorf("sni.%w", err)
	}
	f.Routes = make(map[string]sni.Route, len(f.RawRoutes))
	check := &sni.Table{}
	check.SetAllow(f.AllowList)
	for pattern, raw := range f.RawRoutes {
		js, err := json.Marshal(raw)
		if err != nil {
			return fmt.Errorf("route %q: %w", pattern, err)
		}
		r, err := sni.ParseRoute(js)
		if err == nil {
			err = check.Put(pattern, r)
		}
		if err != nil {
			return fmt.Errorf("route %q: %w", pattern, err)
		}
		f.Routes[pattern] = r
	}
	for i, l := range f.Listen {
		pl, err := ParseListener(l)
		if err != nil {
			return fmt.Errorf("listen[%d]: %w", i, err)
		}
		f.Listen[i] = pl.Listen
	}
	return nil
}
