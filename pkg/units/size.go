// Package units holds the value types of configuration that are more than a number: a size in
// bytes written nginx-style. Each decodes itself (YAML, JSON, flags) and is parsed once, where
// it is read.
package units

import (
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Size is a number of bytes, written as nginx writes it: 4096, 64k, 10m, 1g (case-insensitive).
type Size int64

// ParseSize reads a Size; it must be positive.
func ParseSize(s string) (Size, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	switch {
	case strings.HasSuffix(t, "k"):
		mult, t = 1<<10, t[:len(t)-1]
	case strings.HasSuffix(t, "m"):
		mult, t = 1<<20, t[:len(t)-1]
	case strings.HasSuffix(t, "g"):
		mult, t = 1<<30, t[:len(t)-1]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, optionally with k, m or g", s)
	}
	return Size(n * mult), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (YAML and JSON strings, flags).
func (z *Size) UnmarshalText(b []byte) error {
	n, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*z = n
	return nil
}

// UnmarshalYAML reads a YAML scalar, number or string, as UnmarshalText (so 0 and negative
// numbers are refused like any bad size). Its errors start "line L column C:", where the
// configuration loader puts the key's name.
func (z *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d column %d: a size is a scalar (4096, 64k, 10m), not a %s", n.Line, n.Column, kindName(n.Kind))
	}
	if err := z.UnmarshalText([]byte(n.Value)); err != nil {
		return fmt.Errorf("line %d column %d: %w", n.Line, n.Column, err)
	}
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "YAML node"
}

// MarshalText writes the size as it is read: with the largest unit that divides it.
func (z Size) MarshalText() ([]byte, error) { return []byte(z.String()), nil }

// String is the size with the largest unit that divides it (10m, 4097).
func (z Size) String() string {
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if z != 0 && int64(z)%u.n == 0 {
			return strconv.FormatInt(int64(z)/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(z), 10)
}
