package bench

import (
	"bytes"
	"math/rand"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--endpoints", "127.0.0.1:8000"}, ""},
		{[]string{"--endpoints", "127.0.0.1:8000", "--clients", "0"}, "--clients 0"},
		{[]string{"--endpoints", "127.0.0.1:8000", "--put", "0"}, "weights"},
		{[]string{"--endpoints", "127.0.0.1:8000", "--consistency", "weak"}, "--consistency"},
		{[]string{"--endpoints", "127.0.0.1:8000", "--key-size", "2", "--keys", "1000"}, "too small"},
		{[]string{"--hostfile", "/nonexistent/hostfile.json"}, "--hostfile"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			o, err := parseFlags(tc.args, &bytes.Buffer{})
			if tc.wantErr == "" {
				if err != nil || o.Total != 10000 || o.ValSize != 256 {
					t.Fatalf("got %+v, %v", o, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one with %q", err, tc.wantErr)
			}
		})
	}
}

func TestMixAndKeys(t *testing.T) {
	m := newMix(Options{Put: 1, Append: 0, Get: 3})
	r := rand.New(rand.NewSource(1))
	var n [numOps]int
	for range 4000 {
		n[m.pick(r)]++
	}
	if n[opAppend] != 0 || n[opGet] < 2800 || n[opGet] > 3200 {
		t.Errorf("mix 1:0:3 gave %v", n)
	}
	if k := keyName(42, 8); k != "00000042" {
		t.Errorf("keyName = %q", k)
	}
}

func TestMainUnavailable(t *testing.T) {
	var out, errOut bytes.Buffer
	// Port 1 on loopback: nothing listens, the connection is refused at once.
	code := Main([]string{"--endpoints", "127.0.0.1:1", "--total", "1"}, &out, &errOut)
	if code != exitUnavailable || !strings.Contains(errOut.String(), "no node answered") {
		t.Fatalf("code %d, stderr %q", code, errOut.String())
	}
}
