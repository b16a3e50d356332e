package checkups

import (
	"strings"
	"testing"
	"time"
)

// TestTimeoutsAsDurations: a timeout is a number of seconds (the original's JSON) or a
// duration ("2s", "500ms"), in the upstream and in a server's fail_timeout.
func TestTimeoutsAsDurations(t *testing.T) {
	for body, want := range map[string]time.Duration{
		`{"timeout":2,"servers":[{"host":"a","port":1}]}`:       2 * time.Second,
		`{"timeout":"2s","servers":[{"host":"a","port":1}]}`:    2 * time.Second,
		`{"timeout":"500ms","servers":[{"host":"a","port":1}]}`: 500 * time.Millisecond,
		`{"timeout":"1.5","servers":[{"host":"a","port":1}]}`:   1500 * time.Millisecond,
	} {
		u, err := ParseUpstreamStrict([]byte(body))
		if err != nil || u.DialTimeout() != want {
			t.Errorf("%s: %v, %v; want %v", body, u, err, want)
		}
	}
	u, err := ParseUpstreamStrict([]byte(`{"servers":[{"host":"a","port":1,"fail_timeout":"30s"}]}`))
	if err != nil || u.Cluster.Levels[0].Servers[0].failTimeout() != 30*time.Second {
		t.Fatalf("fail_timeout: %+v, %v", u, err)
	}
}

// TestStrictTyp: a typ that is not a check is an error in config files, slardarctl input and
// store values (a "mysq" would silently be a plain TCP check); the admin protocol, as the
// original, takes it as general.
func TestStrictTyp(t *testing.T) {
	body := []byte(`{"typ":"mysq","servers":[{"host":"a","port":1}]}`)
	if _, err := ParseUpstreamStrict(body); err == nil || !strings.Contains(err.Error(), `typ invalid: "mysq"`) {
		t.Fatalf("strict: %v", err)
	}
	if u, err := ParseUpstream(body); err != nil || u.typ() != TypGeneral {
		t.Fatalf("lenient: %v", err)
	}
}
