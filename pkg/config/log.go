package config

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// ParseLevel reads a log level name; empty means info.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log.level %q: want debug, info, warn or error", s)
}

// Validate checks the format and level names.
func (l Log) Validate() error {
	switch l.Format {
	case "", "text", "json":
	default:
		return fmt.Errorf("log format %q: want text or json", l.Format)
	}
	_, err := ParseLevel(l.Level)
	return err
}

// NewLogger builds the daemon logger from the log section.
func (l Log) NewLogger(w io.Writer) *slog.Logger {
	level, _ := ParseLevel(l.Level)
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
