package slardarctl

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/slardar-go/slardar/pkg/checkups"
	"github.com/slardar-go/slardar/pkg/cmdutil"
	"github.com/slardar-go/slardar/pkg/sni"
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

// toJSON reads input that starts with { or [ as JSON (errors name the line and column: a
// trailing comma is an error, not YAML); anything else as YAML, converted to JSON.
func toJSON(data []byte, path string) ([]byte, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("%s: empty input", path))
	}
	if trimmed[0] == '{' || trimmed[0] == '[' {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		var v any
		err := dec.Decode(&v)
		if err == nil && dec.More() {
			err = &json.SyntaxError{Offset: dec.InputOffset()}
			err = fmt.Errorf("%w: data after the JSON value", err)
		}
		if err != nil {
			return nil, cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("%s: JSON %s: %v", path, position(trimmed, err, dec.InputOffset()), err))
		}
		return trimmed, nil
	}
	var v any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("%s: YAML: %w", path, err))
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("%s: %w", path, err))
	}
	return out, nil
}

// position is "line L, column C" of a JSON error in data.
func position(data []byte, err error, fallback int64) string {
	off := fallback
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	off = min(max(off, 1), int64(len(data)))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n') - 1
	return fmt.Sprintf("line %d, column %d", line, col)
}

// checkUpstream validates an upstream body as strictly as a config file: an unknown field is an
// error naming it, before anything is sent (the admin protocol itself ignores unknown fields).
func checkUpstream(body, input []byte, path string) error {
	if _, err := checkups.ParseUpstreamStrict(body); err != nil {
		if line, col, ok := checkups.Position(input, err.Error()); ok {
			return cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("%s: line %d column %d: %w", path, line, col, err))
		}
		return cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("%s: %w", path, err))
	}
	return nil
}

// checkRoute validates a route body before it is sent.
func checkRoute(body, _ []byte, path string) error {
	if _, err := sni.ParseRoute(body); err != nil {
		return cmdutil.WithCode(cmdutil.ExitBadArgs, fmt.Errorf("%s: %w", path, err))
	}
	return nil
}
