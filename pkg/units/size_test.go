package units

import (
	"encoding/json"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Size
		text string
	}{{"4096", 4096, "4k"}, {"64k", 64 << 10, "64k"}, {"10M", 10 << 20, "10m"}, {" 1g", 1 << 30, "1g"}, {"4097", 4097, "4097"}} {
		got, err := ParseSize(c.in)
		if err != nil || got != c.want || got.String() != c.text {
			t.Errorf("%q: %d %q %v", c.in, got, got.String(), err)
		}
	}
	for _, bad := range []string{"", "0", "-1k", "10x", "k", "99999999999g"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	var y struct {
		Max Size `yaml:"max"`
	}
	if err := yaml.Unmarshal([]byte("max: 64m"), &y); err != nil || y.Max != 64<<20 {
		t.Fatalf("yaml: %d %v", y.Max, err)
	}
	if err := yaml.Unmarshal([]byte("max: 12q"), &y); err == nil {
		t.Fatal("yaml: a bad size decoded")
	}
	b, err := json.Marshal(map[string]Size{"dict": 10 << 20})
	if err != nil || string(b) != `{"dict":"10m"}` {
		t.Fatalf("json: %s %v", b, err)
	}
}

func TestSizeYAMLNumber(t *testing.T) {
	var y struct {
		Max Size `yaml:"max"`
	}
	if err := yaml.Unmarshal([]byte("max: 4096"), &y); err != nil || y.Max != 4096 {
		t.Fatalf("yaml number: %d %v", y.Max, err)
	}
	for _, bad := range []string{"max: 0", "max: -5", "max: [1]"} {
		if err := yaml.Unmarshal([]byte(bad), &y); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
