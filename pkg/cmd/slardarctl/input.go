package slardarctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/slardar-go/slardar/pkg/cmdutil"
)

// maxInput bounds a body read from a file or stdin.
const maxInput = 16 << 20

// readInput reads FILE, or stdin for "-".
func readInput(path string, stdin io.Reader) ([]byte, error) {
	var r io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, cmdutil.WithCode(cmdutil.ExitBadArgs, err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("reading %s: %w", path, err))
	}
	if len(data) > maxInput {
		return nil, cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("%s: larger than %d bytes", path, maxInput))
	}
	return data, nil
}

// toJSON accepts JSON as it is and converts YAML to JSON.
func toJSON(data []byte, path string) ([]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("%s: empty input", path))
	}
	if json.Valid(trimmed) {
		return trimmed, nil
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("%s: neither JSON nor YAML: %w", path, err))
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("%s: %w", path, err))
	}
	return out, nil
}
