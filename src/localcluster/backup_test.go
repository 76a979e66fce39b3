package localcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/backup"
	"raftkv/src/certs"
	"raftkv/src/config"
)

// indexedWriter puts unique keys through the nodes in turn and records
// every acknowledged write with the log index it was applied at.
type indexedWriter struct {
	mu    sync.Mutex
	acked map[string]ackedWrite
}

type ackedWrite struct {
	value string
	index uint64
}

func (w *indexedWriter) run(ctx context.Context, c *Cluster, id int) {
	for n := 0; ctx.Err() == nil; n++ {
		key, val := fmt.Sprintf("b%d-%d", id, n), fmt.Sprintf("v%d-%d", id, n)
		r, err := do(http.MethodPut, c.Nodes[(id+n)%len(c.Nodes)].HTTPAddr, key, "", []byte(val), session(fmt.Sprintf("backup-%d", id), uint64(n+1)))
		if err == nil && r.code == http.StatusOK {
			w.mu.Lock()
			w.acked[key] = ackedWrite{val, r.index}
			w.mu.Unlock()
		}
	}
}

func (w *indexedWriter) copy() map[string]ackedWrite {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := make(map[string]ackedWrite, len(w.acked))
	for k, v := range w.acked {
		m[k] = v
	}
	return m
}

func raftkvCmd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	// The test clusters' CA and admin token (testCerts).
	cmd.Env = append(os.Environ(), config.EnvCACert+"="+certs.CAPath(testCerts), config.EnvToken+"=@"+certs.TokenPath(testCerts, TokenAdmin))
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok {
		return string(out), ee.ExitCode()
	}
	require.NoError(t, err)
	return string(out), 0
}

// TestSnapshotSaveRestoreUnderLoad saves a snapshot with `raftkv snapshot
// save` while 4 writers keep writing, restores it with `raftkv snapshot
// restore` into the folders of a fresh 3-node cluster and starts it: every
// write acknowledged before the save started is at or below the saved
// index, every acknowledged write at or below it reads back equal from the
// restored cluster, every one above it is absent, and the restored cluster
// takes new writes after the saved index. A damaged copy of the file is
// refused by status and by restore (which writes nothing), and a restore
// into folders that hold data is refused.
func TestSnapshotSaveRestoreUnderLoad(t *testing.T) {
	c := startCluster(t, 3)
	w := &indexedWriter{acked: map[string]ackedWrite{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for id := range 4 {
		wg.Go(func() { w.run(ctx, c, id) })
	}
	defer func() { cancel(); wg.Wait() }()
	eventually(t, 15*time.Second, func() bool { return len(w.copy()) >= 200 }, "the writers made no progress")

	file := filepath.Join(t.TempDir(), "backup.snap")
	before := w.copy()
	out, code := raftkvCmd(t, "snapshot", "save", file, "--hostfile", c.Hostfile)
	require.Equal(t, 0, code, out)
	t.Logf("%s", strings.TrimSpace(out))
	n := len(w.copy())
	eventually(t, 15*time.Second, func() bool { return len(w.copy()) >= n+100 }, "the writers made no progress after the save")
	cancel()
	wg.Wait()
	acked := w.copy()

	out, code = raftkvCmd(t, "snapshot", "status", "--json", file)
	require.Equal(t, 0, code, out)
	var st struct {
		backup.Header
		Checksum string `json:"checksum"`
	}
	require.NoError(t, json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &st), out)
	assert.Equal(t, "ok", st.Checksum)
	idx := st.Index
	for k, a := range before {
		assert.LessOrEqual(t, a.index, idx, "write %s acknowledged before the save started is not in the snapshot", k)
	}
	in, after := 0, 0
	for _, a := range acked {
		if a.index <= idx {
			in++
		} else {
			after++
		}
	}
	require.Positive(t, after, "no write was acknowledged after the saved index: the load did not overlap the save")
	assert.GreaterOrEqual(t, st.Keys, in, "the snapshot holds fewer keys than writes acknowledged at or below its index")

	// A damaged copy: one byte of the state flipped.
	damagedFile := filepath.Join(t.TempDir(), "damaged.snap")
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	b[len(b)-len(b)/3] ^= 0x01
	require.NoError(t, os.WriteFile(damagedFile, b, 0o644))
	out, code = raftkvCmd(t, "snapshot", "status", damagedFile)
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, "checksum mismatch")

	// A fresh cluster on other ports, seeded from the backup.
	dir := t.TempDir()
	c2, err := Start(Options{Nodes: 3, Binary: binary, Dir: dir, Env: fastEnv, NoStart: true, CertsDir: testCerts})
	require.NoError(t, err)
	t.Cleanup(c2.Close)
	data := filepath.Join(dir, "persistence")
	out, code = raftkvCmd(t, "snapshot", "restore", damagedFile, "--hostfile", c2.Hostfile, "--data", data)
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, "checksum mismatch")
	ents, err := os.ReadDir(data)
	require.NoError(t, err)
	assert.Empty(t, ents, "a refused restore wrote into the data folder")

	start := time.Now()
	out, code = raftkvCmd(t, "snapshot", "restore", file, "--hostfile", c2.Hostfile, "--data", data)
	require.Equal(t, 0, code, out)
	t.Logf("restore took %v:\n%s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	out, code = raftkvCmd(t, "snapshot", "restore", file, "--hostfile", c2.Hostfile, "--data", data)
	assert.Equal(t, 2, code, out)
	assert.Contains(t, out, "is not empty")

	for i := range c2.Nodes {
		require.NoError(t, c2.StartNode(i))
	}
	waitLeader(t, c2, 10*time.Second)
	for k, a := range acked {
		r := linearizableGet(t, c2, k)
		if a.index <= idx {
			if assert.Equal(t, http.StatusOK, r.code, "write %s at index %d <= %d missing after restore", k, a.index, idx) {
				assert.Equal(t, a.value, r.value, "key %s", k)
			}
		} else {
			assert.Equal(t, http.StatusNotFound, r.code, "write %s at index %d > %d present after restore", k, a.index, idx)
		}
	}
	r, err := do(http.MethodPut, c2.Nodes[0].HTTPAddr, "after-restore", "", []byte("x"), nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, r.code, r.body)
	assert.Greater(t, r.index, idx, "the restored cluster's log does not continue after the snapshot")
	t.Logf("saved index %d; %d acknowledged writes at or below it restored, %d above it absent", idx, in, after)
}
