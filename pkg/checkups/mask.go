package checkups

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// maskPrefix starts a masked heartbeat password: "sha256:<salt>:<digest>".
const maskPrefix = "sha256:"

// MaskPass hides a heartbeat password behind a salted digest, so that GET upstream info does
// not show it to clients that did not authenticate, while a client that knows the password (as
// store-sync does, from the store) can still tell whether it is the same.
func MaskPass(pass, salt string) string {
	sum := sha256.Sum256([]byte(salt + "\x00" + pass))
	return maskPrefix + salt + ":" + hex.EncodeToString(sum[:16])
}

// MaskedSalt returns the salt of a masked password, and false when pass is not masked.
func MaskedSalt(pass string) (string, bool) {
	rest, ok := strings.CutPrefix(pass, maskPrefix)
	if !ok {
		return "", false
	}
	salt, _, ok := strings.Cut(rest, ":")
	return salt, ok
}

// MaskPasswords returns the upstreams with their passwords masked (with one fresh random salt);
// the upstreams given are not changed.
func MaskPasswords(ups map[string]*Upstream) map[string]*Upstream {
	var b [8]byte
	rand.Read(b[:])
	salt := hex.EncodeToString(b[:])
	out := make(map[string]*Upstream, len(ups))
	for name, up := range ups {
		if up.Pass != "" {
			c := *up
			c.Pass = MaskPass(up.Pass, salt)
			up = &c
		}
		out[name] = up
	}
	return out
}
