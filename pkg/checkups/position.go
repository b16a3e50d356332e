package checkups

import (
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Messages of ParseUpstream that name what they are about: a server (by number), a
// field.
var (
	aboutServer = regexp.MustCompile(`^server (\d+): (.*)`)
	aboutField  = regexp.MustCompile(`^(?:unknown field "?([a-z_]+)"?|([a-z_]+)(?: must|:| invalid))`)
)

// PositionIn is the line and column, in an upstream's YAML, of what msg (an error of
// ParseUpstream) is about: the server it names, the key it names within; else the upstream's
// own.
func PositionIn(up *yaml.Node, msg string) (line, col int) {
	n := up
	if m := aboutServer.FindStringSubmatch(msg); m != nil {
		i, _ := strconv.Atoi(m[1])
		if servers := findKey(up, "servers"); servers != nil && servers.Kind == yaml.SequenceNode && i >= 1 && i <= len(servers.Content) {
			n, msg = servers.Content[i-1], m[2]
		}
	}
	if m := aboutField.FindStringSubmatch(msg); m != nil {
		if k := findKey(n, m[1]+m[2]); k != nil {
			return k.Line, k.Column
		}
	}
	return n.Line, n.Column
}

// Position is the line and column, in an upstream written as YAML or JSON (JSON reads as
// YAML), of what msg (an error of ParseUpstream) is about; ok is false when data does not
// parse. Config files, slardarctl input and store values name it with their errors.
func Position(data []byte, msg string) (line, col int, ok bool) {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return 0, 0, false
	}
	line, col = PositionIn(doc.Content[0], msg)
	return line, col, true
}

// findKey is the value of the first key named name under n (depth first), or, for a key
// whose value is a scalar, the key itself; nil if there is none.
func findKey(n *yaml.Node, name string) *yaml.Node {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == name {
				if v := n.Content[i+1]; v.Kind != yaml.ScalarNode {
					return v
				}
				return n.Content[i]
			}
		}
		for i := 1; i < len(n.Content); i += 2 {
			if k := findKey(n.Content[i], name); k != nil {
				return k
			}
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			if k := findKey(c, name); k != nil {
				return k
			}
		}
	}
	return nil
}
