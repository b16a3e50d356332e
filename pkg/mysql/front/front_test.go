package front

import (
	"encoding/binary"
	"testing"

	"github.com/go-mysql-org/go-mysql/mysql"
)

func response(caps uint32, user string, auth []byte, db, plugin string) []byte {
	p := binary.LittleEndian.AppendUint32(nil, caps)
	p = binary.LittleEndian.AppendUint32(p, 1<<24)
	p = append(p, 45)
	p = append(p, make([]byte, 23)...)
	p = append(append(p, user...), 0)
	if caps&mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0 {
		p = append(p, mysql.PutLengthEncodedString(auth)...)
	} else {
		p = append(append(p, byte(len(auth))), auth...)
	}
	p = append(append(p, db...), 0)
	return append(append(p, plugin...), 0)
}

func TestParseResponse(t *testing.T) {
	caps := mysql.CLIENT_PROTOCOL_41 | mysql.CLIENT_SECURE_CONNECTION | mysql.CLIENT_CONNECT_WITH_DB | mysql.CLIENT_PLUGIN_AUTH
	for _, lenenc := range []uint32{0, mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA} {
		r, err := ParseResponse(response(caps|lenenc, "runner", []byte("0123456789abcdefghij"), "upyun", CachingSha2Password))
		if err != nil || r.User != "runner" || string(r.AuthData) != "0123456789abcdefghij" || r.Schema != "upyun" || r.Plugin != CachingSha2Password || r.Collation != 45 {
			t.Fatalf("lenenc %v: %+v %v", lenenc != 0, r, err)
		}
	}
	if r, err := ParseResponse(response(caps|mysql.CLIENT_SSL, "", nil, "", "")[:32]); err != nil || !r.SSLRequest {
		t.Fatalf("SSL request: %+v %v", r, err)
	}
	if _, err := ParseResponse(response(mysql.CLIENT_SECURE_CONNECTION, "u", nil, "", "")); err == nil {
		t.Fatal("a pre-4.1 client was accepted")
	}
}

// The scramble never holds a NUL or '$'.
func TestSalt(t *testing.T) {
	for range 1000 {
		s, err := newSalt()
		if err != nil || len(s) != 20 {
			t.Fatal(err)
		}
		for _, b := range s {
			if b == 0 || b == '$' || b > 0x7f {
				t.Fatalf("salt %x", s)
			}
		}
	}
}

// FuzzParseResponse: any handshake response is parsed or refused without a panic.
func FuzzParseResponse(f *testing.F) {
	caps := mysql.CLIENT_PROTOCOL_41 | mysql.CLIENT_SECURE_CONNECTION | mysql.CLIENT_CONNECT_WITH_DB | mysql.CLIENT_PLUGIN_AUTH
	f.Add(response(caps, "runner", []byte("x"), "db", NativePassword))
	f.Add(response(caps|mysql.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, "u", make([]byte, 300), "", ""))
	f.Fuzz(func(t *testing.T, p []byte) {
		ParseResponse(p)
		parseChangeUser(append([]byte{mysql.COM_CHANGE_USER}, p...), caps)
	})
}
