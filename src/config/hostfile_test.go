package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// writeFile writes content to dir/name and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	return path
}

const goodHostfile = `{
  "raft": [
    {"name": "r0", "host": "127.0.0.1", "raft_port": 7000, "http_port": 8000},
    {"name": "r1", "host": "127.0.0.1", "raft_port": 7001, "http_port": 8001},
    {"name": "r2", "host": "127.0.0.1", "raft_port": 7002, "http_port": 8002}
  ],
  "clients": [
    {"name": "c0", "datafile": "datafile.0.txt"},
    {"name": "c1", "datafile": "datafile.1.txt"}
  ]
}`

func TestShippedHostfilesLoad(t *testing.T) {
	tests := []struct {
		file     string
		raftAddr []string
		httpAddr []string
	}{
		{"hostfile.json", []string{"r0:7000", "r1:7000", "r2:7000"}, []string{"r0:8000", "r1:8000", "r2:8000"}},
		{"hostfile.local.json", []string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"},
			[]string{"127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:8002"}},
	}
	var ids []string
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := filepath.Join("..", "..", tt.file)
			h, err := LoadHostfile(path)
			require.NoError(t, err)
			assert.Equal(t, path, h.Path)
			assert.Equal(t, []string{"r0", "r1", "r2"}, h.Names())
			var raftAddrs []string
			for _, p := range h.Raft {
				raftAddrs = append(raftAddrs, p.RaftAddr())
			}
			assert.Equal(t, tt.raftAddr, raftAddrs)
			assert.Equal(t, tt.httpAddr, h.HTTPAddrs())
			assert.Equal(t, []ClientEntry{{"c0", "datafile.0.txt"}, {"c1", "datafile.1.txt"}}, h.Clients)
			ids = append(ids, h.ClusterID())
		})
	}
	require.Len(t, ids, 2)
	assert.Equal(t, ids[0], ids[1], "the Docker and local hostfiles name the same cluster")
}

func TestHostfileRules(t *testing.T) {
	peer := func(name, host string, raftPort, httpPort int) string {
		return `{"name":"` + name + `","host":"` + host + `","raft_port":` + strconv.Itoa(raftPort) + `,"http_port":` + strconv.Itoa(httpPort) + `}`
	}
	raft := func(peers ...string) string { return `{"raft":[` + strings.Join(peers, ",") + `]}` }
	p0 := peer("r0", "h0", 7000, 8000)
	p1 := peer("r1", "h1", 7000, 8000)

	tests := []struct {
		name    string
		content string
		want    []string // each must appear in the error; none: valid
	}{
		{"valid without clients", raft(p0, p1), nil},
		{"valid with empty clients", `{"raft":[` + p0 + `],"clients":[]}`, nil},
		{"valid with null clients", `{"raft":[` + p0 + `],"clients":null}`, nil},
		{"same ports on different hosts are fine", raft(p0, peer("r1", "h1", 7000, 8000)), nil},
		{"ipv6 host", raft(peer("r0", "::1", 7000, 8000)), nil},
		{"a node marked join last", raft(p0, `{"name":"r1","host":"h1","raft_port":7000,"http_port":8000,"join":true}`), nil},
		{"join false", raft(`{"name":"r0","host":"h0","raft_port":7000,"http_port":8000,"join":false}`), nil},
		{"join not a bool", raft(p0, `{"name":"r1","host":"h1","raft_port":7000,"http_port":8000,"join":"yes"}`),
			[]string{`hostfile.json: raft[1].join "yes" is not true or false`}},
		{"join before a bootstrap node", raft(`{"name":"r0","host":"h0","raft_port":7000,"http_port":8000}`,
			`{"name":"r1","host":"h1","raft_port":7000,"http_port":8000,"join":true}`, `{"name":"r2","host":"h2","raft_port":7000,"http_port":8000}`),
			[]string{`hostfile.json: raft[2] "r2" is not marked join but follows a node that is`}},
		{"every node join", raft(`{"name":"r0","host":"h0","raft_port":7000,"http_port":8000,"join":true}`),
			[]string{`hostfile.json: raft marks every node join`}},

		{"empty file", ``, []string{"hostfile.json: is empty"}},
		{"not json", "{\n  \"raft\": [,]\n}", []string{"hostfile.json: is not valid JSON: line 2, column 12"}},
		{"truncated", `{"raft":[`, []string{"hostfile.json: is not valid JSON"}},
		{"not an object", `[1,2]`, []string{"hostfile.json: [1,2] is not an object"}},
		{"trailing data", raft(p0) + `{}`, []string{"hostfile.json: has data after the top-level object"}},
		{"unknown top-level field", `{"raft":[` + p0 + `],"peers":[]}`, []string{`hostfile.json: has an unknown field "peers"`}},
		{"repeated top-level field", `{"raft":[` + p0 + `],"raft":[` + p1 + `]}`, []string{"hostfile.json: raft is given twice"}},
		{"raft missing", `{"clients":[]}`, []string{"hostfile.json: raft is missing"}},
		{"raft empty", `{"raft":[]}`, []string{"hostfile.json: raft is empty"}},
		{"raft null", `{"raft":null}`, []string{"hostfile.json: raft is empty"}},
		{"raft not a list", `{"raft":{"r0":1}}`, []string{`hostfile.json: raft {"r0":1} is not a list`}},
		{"peer not an object", `{"raft":["r0"]}`, []string{`hostfile.json: raft[0] "r0" is not an object`}},
		{"unknown peer field", `{"raft":[{"name":"r0","host":"h","raft_port":1,"http_port":2,"port":3}]}`,
			[]string{`hostfile.json: raft[0] has an unknown field "port"`}},
		{"repeated peer field", `{"raft":[{"name":"r0","name":"r9","host":"h","raft_port":1,"http_port":2}]}`,
			[]string{`hostfile.json: raft[0].name is given twice`}},
		{"missing fields", `{"raft":[{"name":"r0"}]}`, []string{
			"hostfile.json: raft[0].host is missing",
			"hostfile.json: raft[0].raft_port is missing",
			"hostfile.json: raft[0].http_port is missing"}},
		{"empty name and host", raft(peer("", "", 7000, 8000)), []string{
			`hostfile.json: raft[0].name "" is empty`, `hostfile.json: raft[0].host "" is empty`}},
		{"name of the wrong type", `{"raft":[{"name":7,"host":"h","raft_port":1,"http_port":2}]}`,
			[]string{"hostfile.json: raft[0].name 7 is not a string"}},
		{"null name", `{"raft":[{"name":null,"host":"h","raft_port":1,"http_port":2}]}`,
			[]string{"hostfile.json: raft[0].name null is not a string"}},
		{"port as a string", `{"raft":[{"name":"r0","host":"h","raft_port":"7000","http_port":2}]}`,
			[]string{`hostfile.json: raft[0].raft_port "7000" is not a number`}},
		{"fractional port", `{"raft":[{"name":"r0","host":"h","raft_port":7000.5,"http_port":2}]}`,
			[]string{`hostfile.json: raft[0].raft_port 7000.5 is not a whole number`}},
		{"port zero", raft(peer("r0", "h", 0, 8000)), []string{"hostfile.json: raft[0].raft_port 0 is out of range 1..65535"}},
		{"port too large", raft(peer("r0", "h", 7000, 65536)), []string{"hostfile.json: raft[0].http_port 65536 is out of range 1..65535"}},
		{"negative port", raft(peer("r0", "h", -1, 8000)), []string{"hostfile.json: raft[0].raft_port -1 is out of range 1..65535"}},
		{"name with a slash", raft(peer("../r0", "h", 7000, 8000)), []string{`hostfile.json: raft[0].name "../r0" may hold only letters, digits`}},
		{"name dot dot", raft(peer("..", "h", 7000, 8000)), []string{`hostfile.json: raft[0].name ".." is not a usable name`}},
		{"name too long", raft(peer(strings.Repeat("r", 65), "h", 7000, 8000)), []string{`is longer than 64 bytes`}},
		{"host with a space", raft(peer("r0", "h 0", 7000, 8000)), []string{`hostfile.json: raft[0].host "h 0" holds white space`}},
		{"duplicate name", raft(p0, peer("r0", "h1", 7000, 8000)), []string{`hostfile.json: raft[1].name "r0" is used twice: also raft[0].name`}},
		{"duplicate http address", raft(peer("r0", "127.0.0.1", 7000, 8000), peer("r1", "127.0.0.1", 7001, 8001), peer("r2", "127.0.0.1", 7002, 8000)),
			[]string{"hostfile.json: raft[2].http_port 8000 is used twice: 127.0.0.1:8000 is also raft[0].http_port"}},
		{"duplicate raft address", raft(peer("r0", "h", 7000, 8000), peer("r1", "H", 7000, 8001)),
			[]string{"hostfile.json: raft[1].raft_port 7000 is used twice: h:7000 is also raft[0].raft_port"}},
		{"raft port of one is http port of another", raft(peer("r0", "h", 7000, 8000), peer("r1", "h", 8000, 8001)),
			[]string{"hostfile.json: raft[1].raft_port 8000 is used twice: h:8000 is also raft[0].http_port"}},
		{"raft and http port equal", raft(peer("r0", "h", 7000, 7000)),
			[]string{"hostfile.json: raft[0].http_port 7000 is used twice: h:7000 is also raft[0].raft_port"}},
		{"clients not a list", `{"raft":[` + p0 + `],"clients":"c0"}`, []string{`hostfile.json: clients "c0" is not a list`}},
		{"client missing datafile", `{"raft":[` + p0 + `],"clients":[{"name":"c0"}]}`, []string{"hostfile.json: clients[0].datafile is missing"}},
		{"client empty datafile", `{"raft":[` + p0 + `],"clients":[{"name":"c0","datafile":""}]}`, []string{`hostfile.json: clients[0].datafile "" is empty`}},
		{"client unknown field", `{"raft":[` + p0 + `],"clients":[{"name":"c0","datafile":"d","host":"x"}]}`,
			[]string{`hostfile.json: clients[0] has an unknown field "host"`}},
		{"client name clashes with a raft name", `{"raft":[` + p0 + `],"clients":[{"name":"r0","datafile":"d"}]}`,
			[]string{`hostfile.json: clients[0].name "r0" is used twice: also raft[0].name`}},
		{"duplicate client name", `{"raft":[` + p0 + `],"clients":[{"name":"c","datafile":"d"},{"name":"c","datafile":"e"}]}`,
			[]string{`hostfile.json: clients[1].name "c" is used twice: also clients[0].name`}},
		{"every problem is reported", `{"raft":[` + peer("r0", "h", 0, 8000) + `,` + peer("r0", "", 7000, 70000) + `],"extra":1,"clients":[{"name":"r0"}]}`,
			[]string{
				`hostfile.json: has an unknown field "extra"`,
				"hostfile.json: raft[0].raft_port 0 is out of range",
				`hostfile.json: raft[1].host "" is empty`,
				"hostfile.json: raft[1].http_port 70000 is out of range",
				`hostfile.json: raft[1].name "r0" is used twice`,
				"hostfile.json: clients[0].datafile is missing",
				`hostfile.json: clients[0].name "r0" is used twice`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Run from the file's folder so that messages start with "hostfile.json:".
			t.Chdir(t.TempDir())
			writeFile(t, ".", "hostfile.json", tt.content)
			h, err := LoadHostfile("hostfile.json")
			if tt.want == nil {
				require.NoError(t, err)
				assert.NotEmpty(t, h.Raft)
				return
			}
			require.Error(t, err)
			t.Logf("error:\n%v", err)
			assert.Nil(t, h)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				assert.True(t, strings.HasPrefix(line, "hostfile.json: "), "every message names the file: %q", line)
			}
			assert.Len(t, strings.Split(err.Error(), "\n"), len(tt.want), "one message per problem:\n%v", err)
		})
	}
}

func TestLoadHostfileMissingFile(t *testing.T) {
	_, err := LoadHostfile(filepath.Join(t.TempDir(), "nope.json"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nope.json")
}

func TestClusterID(t *testing.T) {
	load := func(t *testing.T, content string) *Hostfile {
		h, err := ParseHostfile("h.json", []byte(content))
		require.NoError(t, err)
		return h
	}
	base := load(t, goodHostfile)
	tests := []struct {
		name    string
		content string
		same    bool
	}{
		{"addresses differ", strings.NewReplacer("127.0.0.1", "10.0.0.9", "7001", "9001", "8002", "9002").Replace(goodHostfile), true},
		{"clients differ", strings.Replace(goodHostfile, `"c1"`, `"c9"`, 1), true},
		{"a name differs", strings.Replace(goodHostfile, `"r2"`, `"r9"`, 1), false},
		{"order differs", strings.NewReplacer(`"r0"`, `"r1"`, `"r1"`, `"r0"`).Replace(goodHostfile), false},
		{"a node marked join added", strings.Replace(goodHostfile, `"http_port": 8002}`,
			`"http_port": 8002}, {"name": "r3", "host": "127.0.0.1", "raft_port": 7003, "http_port": 8003, "join": true}`, 1), true},
		{"the same node not marked join", strings.Replace(goodHostfile, `"http_port": 8002}`,
			`"http_port": 8002}, {"name": "r3", "host": "127.0.0.1", "raft_port": 7003, "http_port": 8003}`, 1), false},
		{"a node fewer", `{"raft":[{"name":"r0","host":"h","raft_port":1,"http_port":2},{"name":"r1","host":"h","raft_port":3,"http_port":4}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := load(t, tt.content)
			if tt.same {
				assert.Equal(t, base.ClusterID(), h.ClusterID())
			} else {
				assert.NotEqual(t, base.ClusterID(), h.ClusterID())
			}
		})
	}
	assert.Len(t, base.ClusterID(), 32)
	assert.Equal(t, base.ClusterID(), base.ClusterID())
}

func TestIDOf(t *testing.T) {
	h, err := ParseHostfile("h.json", []byte(goodHostfile))
	require.NoError(t, err)
	tests := []struct {
		name string
		id   int
		ok   bool
	}{
		{"r0", 0, true},
		{"r2", 2, true},
		{"c0", -1, false},
		{"R0", -1, false},
		{"", -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, ok := h.IDOf(tt.name)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.id, id)
		})
	}
}

func TestPeerAddrs(t *testing.T) {
	tests := []struct {
		peer       Peer
		raft, http string
	}{
		{Peer{Name: "r0", Host: "r0", RaftPort: 7000, HTTPPort: 8000}, "r0:7000", "r0:8000"},
		{Peer{Name: "r0", Host: "::1", RaftPort: 7000, HTTPPort: 8000}, "[::1]:7000", "[::1]:8000"},
	}
	for _, tt := range tests {
		t.Run(tt.peer.Host, func(t *testing.T) {
			assert.Equal(t, tt.raft, tt.peer.RaftAddr())
			assert.Equal(t, tt.http, tt.peer.HTTPAddr())
		})
	}
}
