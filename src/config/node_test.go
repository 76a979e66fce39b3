package config

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// env returns a getenv over m. Unless m says otherwise (a RAFT_INSECURE or
// any RAFTKV_ key), RAFT_INSECURE is true: the tests of other settings
// need no TLS material.
func env(m map[string]string) func(string) string {
	_, tlsSet := m[EnvInsecure]
	for k := range m {
		tlsSet = tlsSet || strings.HasPrefix(k, "RAFTKV_")
	}
	return func(k string) string {
		if k == EnvInsecure && !tlsSet {
			return "true"
		}
		return m[k]
	}
}

func hostnameIs(name string) func() (string, error) {
	return func() (string, error) { return name, nil }
}

func TestLoadNodePrecedence(t *testing.T) {
	dir := t.TempDir()
	hf := writeFile(t, dir, "hostfile.local.json", goodHostfile)
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		hostname string
		want     Node // Hostfile is checked apart
	}{
		{
			name:     "defaults; the name is the host name",
			args:     []string{"--hostfile", hf},
			hostname: "r1",
			want: Node{Name: "r1", ID: 1, DataDir: "persistence", Heartbeat: 100 * time.Millisecond,
				ElectionTimeout: time.Second, SnapshotEvery: 10000, MaxClientConns: 1024, Insecure: true, ListenHost: "127.0.0.1"},
		},
		{
			name:     "variables override defaults",
			args:     []string{"--hostfile", hf},
			env:      map[string]string{"RAFT_NAME": "r2", "RAFT_DURATION": "30", "RAFT_VERBOSE": "true", "RAFT_HEARTBEAT": "50ms", "RAFT_ELECTION_TIMEOUT": "500ms"},
			hostname: "r1",
			want: Node{Name: "r2", ID: 2, DataDir: "persistence", Duration: 30 * time.Second, Verbose: true,
				Heartbeat: 50 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond, SnapshotEvery: 10000, MaxClientConns: 1024, Insecure: true, ListenHost: "127.0.0.1"},
		},
		{
			name: "flags override variables",
			args: []string{"--hostfile", hf, "--name", "r0", "--duration", "5", "--verbose=false", "--heartbeat", "20ms",
				"--election-timeout", "300ms", "--data", "/tmp/p", "--snapshot-every", "7", "--pprof", "127.0.0.1:6060"},
			env:      map[string]string{"RAFT_NAME": "r2", "RAFT_DURATION": "30", "RAFT_VERBOSE": "true", "RAFT_HEARTBEAT": "50ms", "RAFT_ELECTION_TIMEOUT": "500ms"},
			hostname: "r1",
			want: Node{Name: "r0", ID: 0, DataDir: "/tmp/p", Duration: 5 * time.Second, Verbose: false,
				Heartbeat: 20 * time.Millisecond, ElectionTimeout: 300 * time.Millisecond, SnapshotEvery: 7, PprofAddr: "127.0.0.1:6060", MaxClientConns: 1024, Insecure: true, ListenHost: "127.0.0.1"},
		},
		{
			name:     "single-dash flags and a bare --verbose",
			args:     []string{"-hostfile=" + hf, "-name=r2", "--verbose"},
			want:     Node{Name: "r2", ID: 2, DataDir: "persistence", Verbose: true, Heartbeat: 100 * time.Millisecond, ElectionTimeout: time.Second, SnapshotEvery: 10000, MaxClientConns: 1024, Insecure: true, ListenHost: "127.0.0.1"},
			hostname: "",
		},
		{
			name:     "empty variables count as unset",
			args:     []string{"--hostfile", hf},
			env:      map[string]string{"RAFT_NAME": "", "RAFT_HEARTBEAT": ""},
			hostname: "r0",
			want:     Node{Name: "r0", DataDir: "persistence", Heartbeat: 100 * time.Millisecond, ElectionTimeout: time.Second, SnapshotEvery: 10000, MaxClientConns: 1024, Insecure: true, ListenHost: "127.0.0.1"},
		},
		{
			name:     "durations as Go durations and 0",
			args:     []string{"--hostfile", hf, "--name", "r0", "--duration", "1m30s"},
			env:      map[string]string{"RAFT_DURATION": "0"},
			hostname: "",
			want:     Node{Name: "r0", DataDir: "persistence", Duration: 90 * time.Second, Heartbeat: 100 * time.Millisecond, ElectionTimeout: time.Second, SnapshotEvery: 10000, MaxClientConns: 1024, Insecure: true, ListenHost: "127.0.0.1"},
		},
		{
			name:     "RAFT_DURATION 0 means until signalled",
			args:     []string{"--hostfile", hf, "--name", "r0"},
			env:      map[string]string{"RAFT_DURATION": "0"},
			hostname: "",
			want:     Node{Name: "r0", DataDir: "persistence", Heartbeat: 100 * time.Millisecond, ElectionTimeout: time.Second, SnapshotEvery: 10000, MaxClientConns: 1024, Insecure: true, ListenHost: "127.0.0.1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := LoadNode(tt.args, env(tt.env), hostnameIs(tt.hostname))
			require.NoError(t, err)
			require.NotNil(t, n.Hostfile)
			assert.Equal(t, hf, n.Hostfile.Path)
			assert.Equal(t, n.Name, n.Self().Name)
			got := *n
			got.Hostfile = nil
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestLoadNodeDefaultHostfile(t *testing.T) {
	t.Chdir(t.TempDir())
	writeFile(t, ".", "hostfile.json", goodHostfile)
	n, err := LoadNode(nil, env(nil), hostnameIs("r2"))
	require.NoError(t, err)
	assert.Equal(t, "hostfile.json", n.Hostfile.Path)
	assert.Equal(t, 2, n.ID)
	assert.Equal(t, "127.0.0.1:7002", n.Self().RaftAddr())
	assert.Equal(t, "persistence/r2", n.NodeDir())
}

func TestLoadNodeShippedHostfiles(t *testing.T) {
	for _, file := range []string{"../../hostfile.json", "../../hostfile.local.json"} {
		for _, name := range []string{"r0", "r1", "r2"} {
			t.Run(file+"/"+name, func(t *testing.T) {
				n, err := LoadNode([]string{"--hostfile", file}, env(map[string]string{"RAFT_NAME": name}), hostnameIs("laptop"))
				require.NoError(t, err)
				assert.Equal(t, name, n.Self().Name)
			})
		}
	}
}

func TestLoadNodeErrors(t *testing.T) {
	dir := t.TempDir()
	hf := writeFile(t, dir, "hostfile.json", goodHostfile)
	bad := writeFile(t, dir, "bad.json", `{"raft":[]}`)
	hostErr := func() (string, error) { return "", errors.New("uname failed") }
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		hostname func() (string, error)
		want     []string // each must appear in the error
	}{
		{"unknown flag", []string{"--nope"}, nil, hostnameIs("r0"), []string{"flag provided but not defined: -nope"}},
		{"flag without a value", []string{"--name"}, nil, hostnameIs("r0"), []string{"flag needs an argument: -name"}},
		{"stray argument", []string{"--hostfile", hf, "extra"}, nil, hostnameIs("r0"), []string{`unexpected argument "extra"`}},
		{"bad RAFT_DURATION", []string{"--hostfile", hf}, map[string]string{"RAFT_DURATION": "ten"}, hostnameIs("r0"),
			[]string{`RAFT_DURATION "ten" is not a whole number of seconds`}},
		{"negative RAFT_DURATION", []string{"--hostfile", hf}, map[string]string{"RAFT_DURATION": "-5"}, hostnameIs("r0"),
			[]string{`RAFT_DURATION "-5" is not a whole number of seconds`}},
		{"bad --duration", []string{"--hostfile", hf, "--duration", "-1s"}, nil, hostnameIs("r0"),
			[]string{`--duration "-1s" is not a whole number of seconds`}},
		{"bad RAFT_VERBOSE", []string{"--hostfile", hf}, map[string]string{"RAFT_VERBOSE": "yes"}, hostnameIs("r0"),
			[]string{`RAFT_VERBOSE "yes" is not true or false`}},
		{"bad RAFT_HEARTBEAT", []string{"--hostfile", hf}, map[string]string{"RAFT_HEARTBEAT": "100"}, hostnameIs("r0"),
			[]string{`RAFT_HEARTBEAT "100" is not a Go duration`}},
		{"zero RAFT_HEARTBEAT", []string{"--hostfile", hf}, map[string]string{"RAFT_HEARTBEAT": "0s"}, hostnameIs("r0"),
			[]string{`RAFT_HEARTBEAT "0s" must be positive`}},
		{"bad RAFT_ELECTION_TIMEOUT", []string{"--hostfile", hf}, map[string]string{"RAFT_ELECTION_TIMEOUT": "soon"}, hostnameIs("r0"),
			[]string{`RAFT_ELECTION_TIMEOUT "soon" is not a Go duration`}},
		{"bad --election-timeout", []string{"--hostfile", hf, "--election-timeout", "-1s"}, nil, hostnameIs("r0"),
			[]string{`--election-timeout "-1s" must be positive`}},
		{"heartbeat not below the election timeout", []string{"--hostfile", hf},
			map[string]string{"RAFT_HEARTBEAT": "2s"}, hostnameIs("r0"),
			[]string{"heartbeat 2s (RAFT_HEARTBEAT) must be shorter than the election timeout 1s (default)"}},
		{"heartbeat equal to the election timeout", []string{"--hostfile", hf, "--election-timeout", "100ms"}, nil, hostnameIs("r0"),
			[]string{"heartbeat 100ms (default) must be shorter than the election timeout 100ms (--election-timeout)"}},
		{"a bad heartbeat is not also compared", []string{"--hostfile", hf, "--election-timeout", "50ms"},
			map[string]string{"RAFT_HEARTBEAT": "fast"}, hostnameIs("r0"),
			[]string{`RAFT_HEARTBEAT "fast" is not a Go duration`}},
		{"bad --snapshot-every", []string{"--hostfile", hf, "--snapshot-every", "0"}, nil, hostnameIs("r0"),
			[]string{`--snapshot-every "0" is not a whole number > 0`}},
		{"bad --pprof", []string{"--hostfile", hf, "--pprof", "6060"}, nil, hostnameIs("r0"),
			[]string{`--pprof "6060": want host:port`}},
		{"empty --data", []string{"--hostfile", hf, "--data", ""}, nil, hostnameIs("r0"), []string{"--data is empty"}},
		{"name not in the hostfile", []string{"--hostfile", hf}, map[string]string{"RAFT_NAME": "r7"}, hostnameIs("r0"),
			[]string{`node name "r7" (from RAFT_NAME) is not in ` + hf + `; its Raft nodes are r0, r1, r2`}},
		{"host name not in the hostfile", []string{"--hostfile", hf}, nil, hostnameIs("laptop"),
			[]string{`node name "laptop" (from the host name) is not in ` + hf}},
		{"a client's name", []string{"--hostfile", hf, "--name", "c0"}, nil, hostnameIs("r0"),
			[]string{`node name "c0" (from --name) is a client in ` + hf + `, not a Raft node`}},
		{"no host name", []string{"--hostfile", hf}, nil, hostErr,
			[]string{"no node name: give --name or set RAFT_NAME", "uname failed"}},
		{"missing hostfile", []string{"--hostfile", dir + "/none.json"}, nil, hostnameIs("r0"), []string{"none.json"}},
		{"bad hostfile", []string{"--hostfile", bad}, nil, hostnameIs("r0"), []string{bad + ": raft is empty"}},
		{"every problem at once", []string{"--hostfile", hf, "--name", "x"},
			map[string]string{"RAFT_DURATION": "x", "RAFT_VERBOSE": "x", "RAFT_HEARTBEAT": "x", "RAFT_ELECTION_TIMEOUT": "x"}, hostnameIs("r0"),
			[]string{"RAFT_DURATION", "RAFT_VERBOSE", "RAFT_HEARTBEAT", "RAFT_ELECTION_TIMEOUT", `node name "x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := LoadNode(tt.args, env(tt.env), tt.hostname)
			require.Error(t, err)
			t.Logf("error:\n%v", err)
			assert.Nil(t, n)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			if len(tt.want) == 1 {
				assert.NotContains(t, err.Error(), "\n", "one problem, one message")
			}
		})
	}
}

func TestHelp(t *testing.T) {
	tests := []struct {
		name string
		load func() error
		want []string
	}{
		{"node", func() error { _, err := LoadNode([]string{"--help"}, nil, nil); return err },
			[]string{"usage: raftkv node", "-election-timeout", "RAFT_HEARTBEAT"}},
		{"client", func() error { _, err := LoadClientNode([]string{"-h"}, nil, nil); return err },
			[]string{"usage: raftkv client", "-datafile", "RAFT_INTERVAL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.load()
			require.ErrorIs(t, err, flag.ErrHelp)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestLoadClientNode(t *testing.T) {
	dir := t.TempDir()
	hf := writeFile(t, dir, "hostfile.json", goodHostfile)
	allHTTP := []string{"127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:8002"}
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		hostname string
		want     ClientNode // Hostfile is checked apart
	}{
		{
			name:     "defaults from the hostfile; the name is the host name",
			args:     []string{"--hostfile", hf},
			hostname: "c1",
			want: ClientNode{Name: "c1", Datafile: "datafile.1.txt", Endpoints: allHTTP, DataDir: "persistence",
				Interval: time.Second},
		},
		{
			name:     "variables override defaults",
			args:     []string{"--hostfile", hf},
			env:      map[string]string{"RAFT_NAME": "c0", "RAFT_INTERVAL": "250ms", "RAFT_DURATION": "20", "RAFT_VERBOSE": "true"},
			hostname: "c1",
			want: ClientNode{Name: "c0", Datafile: "datafile.0.txt", Endpoints: allHTTP, DataDir: "persistence",
				Interval: 250 * time.Millisecond, Duration: 20 * time.Second, Verbose: true},
		},
		{
			name: "flags override variables and the hostfile",
			args: []string{"--hostfile", hf, "--name", "c1", "--interval", "10ms", "--duration", "3", "--verbose=false",
				"--datafile", "other.txt", "--endpoints", "a:1, b:2", "--data", "out"},
			env:      map[string]string{"RAFT_NAME": "c0", "RAFT_INTERVAL": "250ms", "RAFT_DURATION": "20", "RAFT_VERBOSE": "true"},
			hostname: "c1",
			want: ClientNode{Name: "c1", Datafile: "other.txt", Endpoints: []string{"a:1", "b:2"}, DataDir: "out",
				Interval: 10 * time.Millisecond, Duration: 3 * time.Second},
		},
		{
			name:     "a name not in the hostfile with its own data file",
			args:     []string{"--hostfile", hf, "--name", "laptop", "--datafile", "mine.txt"},
			hostname: "",
			want: ClientNode{Name: "laptop", Datafile: "mine.txt", Endpoints: allHTTP, DataDir: "persistence",
				Interval: time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadClientNode(tt.args, env(tt.env), hostnameIs(tt.hostname))
			require.NoError(t, err)
			require.NotNil(t, c.Hostfile)
			assert.Equal(t, hf, c.Hostfile.Path)
			got := *c
			got.Hostfile = nil
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestLoadClientNodeErrors(t *testing.T) {
	dir := t.TempDir()
	hf := writeFile(t, dir, "hostfile.json", goodHostfile)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"bad RAFT_INTERVAL", []string{"--hostfile", hf, "--name", "c0"}, map[string]string{"RAFT_INTERVAL": "1"},
			[]string{`RAFT_INTERVAL "1" is not a Go duration`}},
		{"zero RAFT_INTERVAL", []string{"--hostfile", hf, "--name", "c0"}, map[string]string{"RAFT_INTERVAL": "0s"},
			[]string{`RAFT_INTERVAL "0s" must be positive`}},
		{"bad --interval", []string{"--hostfile", hf, "--name", "c0", "--interval", "-1ms"}, nil,
			[]string{`--interval "-1ms" must be positive`}},
		{"bad RAFT_DURATION", []string{"--hostfile", hf, "--name", "c0"}, map[string]string{"RAFT_DURATION": "1.5"},
			[]string{`RAFT_DURATION "1.5" is not a whole number of seconds`}},
		{"bad endpoints", []string{"--hostfile", hf, "--name", "c0", "--endpoints", "a:1,b"}, nil,
			[]string{`--endpoints: endpoint "b" is not host:port`}},
		{"unknown client without a data file", []string{"--hostfile", hf, "--name", "c9"}, nil,
			[]string{`client name "c9" (from --name) is not in ` + hf + ` and no --datafile is given; its clients are c0, c1`}},
		{"a Raft node's name", []string{"--hostfile", hf}, map[string]string{"RAFT_NAME": "r0"},
			[]string{`client name "r0" (from RAFT_NAME) is a Raft node's name`}},
		{"empty --datafile", []string{"--hostfile", hf, "--name", "c0", "--datafile", ""}, nil,
			[]string{"--datafile is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadClientNode(tt.args, env(tt.env), hostnameIs("c0"))
			require.Error(t, err)
			t.Logf("error:\n%v", err)
			assert.Nil(t, c)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestParseEndpoints(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		errs []string
	}{
		{in: "127.0.0.1:8000", want: []string{"127.0.0.1:8000"}},
		{in: "r0:8000,r1:8000,r2:8000", want: []string{"r0:8000", "r1:8000", "r2:8000"}},
		{in: " a:1 , b:2 ", want: []string{"a:1", "b:2"}},
		{in: "[::1]:8000,localhost:8001", want: []string{"[::1]:8000", "localhost:8001"}},
		{in: "", errs: []string{"no endpoints"}},
		{in: "  ", errs: []string{"no endpoints"}},
		{in: "a:1,,b:2", errs: []string{"endpoint 2 is empty"}},
		{in: "a", errs: []string{`endpoint "a" is not host:port`}},
		{in: ":8000", errs: []string{`endpoint ":8000" has no host`}},
		{in: "a:0", errs: []string{`endpoint "a:0": port "0" is not in 1..65535`}},
		{in: "a:65536", errs: []string{`port "65536" is not in 1..65535`}},
		{in: "a:http", errs: []string{`port "http" is not in 1..65535`}},
		{in: "http://a:1", errs: []string{`endpoint "http://a:1": want host:port, without a scheme`}},
		{in: "a:1,A:1", errs: []string{`endpoint "A:1" is given twice`}},
		{in: "a,b:0,c:1", errs: []string{`endpoint "a" is not host:port`, `endpoint "b:0"`}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseEndpoints(tt.in)
			if tt.errs == nil {
				require.NoError(t, err)
				assert.Equal(t, tt.want, got)
				return
			}
			require.Error(t, err)
			assert.Nil(t, got)
			for _, w := range tt.errs {
				assert.Contains(t, err.Error(), w)
			}
			assert.Len(t, strings.Split(err.Error(), "\n"), len(tt.errs))
		})
	}
}

func TestLoadNodeMaxClientConns(t *testing.T) {
	hf := writeFile(t, t.TempDir(), "hostfile.json", goodHostfile)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    int
		wantErr string
	}{
		{"default", nil, nil, 1024, ""},
		{"variable", nil, map[string]string{"RAFT_MAX_CLIENT_CONNS": "64"}, 64, ""},
		{"flag overrides the variable", []string{"--max-client-conns", "8"}, map[string]string{"RAFT_MAX_CLIENT_CONNS": "64"}, 8, ""},
		{"one", []string{"--max-client-conns", "1"}, nil, 1, ""},
		{"largest", []string{"--max-client-conns", "1048576"}, nil, 1 << 20, ""},
		{"zero", []string{"--max-client-conns", "0"}, nil, 0, `--max-client-conns "0" is not a whole number from 1 to 1048576`},
		{"negative variable", nil, map[string]string{"RAFT_MAX_CLIENT_CONNS": "-1"}, 0, `RAFT_MAX_CLIENT_CONNS "-1" is not a whole number from 1 to 1048576`},
		{"not a number", nil, map[string]string{"RAFT_MAX_CLIENT_CONNS": "many"}, 0, `RAFT_MAX_CLIENT_CONNS "many" is not a whole number`},
		{"too large", []string{"--max-client-conns", "1048577"}, nil, 0, `--max-client-conns "1048577" is not a whole number from 1 to 1048576`},
		{"bad flag hides a good variable", []string{"--max-client-conns", "x"}, map[string]string{"RAFT_MAX_CLIENT_CONNS": "5"}, 0, `--max-client-conns "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := LoadNode(append([]string{"--hostfile", hf, "--name", "r0"}, tt.args...), env(tt.env), hostnameIs("r0"))
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, n.MaxClientConns)
		})
	}
}
