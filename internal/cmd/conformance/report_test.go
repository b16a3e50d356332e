package main

import (
	"os"
	"strings"
	"testing"
)

// TestReportNamesFailuresLast: a test that failed through the proxy and tests a crashed test
// binary never ran are named in the error, and the crash's output is printed last.
func TestReportNamesFailuresLast(t *testing.T) {
	direct := map[string]outcome{"TestA": {action: "pass"}, "TestB": {action: "pass"}, "TestC": {action: "pass"}}
	primary := map[string]outcome{"TestA": {action: "pass"}, "TestB": {action: "pass"}, "TestC": {action: "pass"}}
	split := map[string]outcome{"TestA": {action: "fail", output: "boom\n"},
		packagePanic: {action: "fail", output: "panic: test timed out after 5m0s\nrunning tests:\n\tTestA (5m0s)\n"}}
	f, err := os.CreateTemp(t.TempDir(), "report")
	if err != nil {
		t.Fatal(err)
	}
	err = report(f, "direct", []string{"primary-only", "split"}, []map[string]outcome{direct, primary, split}, true, "")
	if err == nil || !strings.Contains(err.Error(), "TestA through split") || !strings.Contains(err.Error(), "2 never ran, first TestB through split") {
		t.Fatalf("error: %v", err)
	}
	out, _ := os.ReadFile(f.Name())
	text := string(out)
	if !strings.Contains(text, "not-run") || !strings.HasSuffix(strings.TrimSpace(text), "TestA (5m0s)") {
		t.Fatalf("report:\n%s", text)
	}
}
