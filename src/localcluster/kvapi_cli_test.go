package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/api"
)

// cli runs the real raftkv binary with RAFTKV_ENDPOINTS set to c's nodes
// (as a person who exported it would) and stdin, and returns its stdout,
// stderr and exit code.
func cli(t *testing.T, c *Cluster, stdin string, args ...string) (string, string, int) {
	cmd := exec.Command(binary, args...)
	cmd.Env = append(append(os.Environ(), "RAFTKV_ENDPOINTS="+strings.Join(c.Endpoints(), ",")), c.ClientEnv(TokenReadWrite)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Errorf("run raftkv %v: %v", args, err)
		code = -1
	}
	return out.String(), errb.String(), code
}

// TestCLIKeyValueAPI: the second wave's CLI against real nodes: CAS,
// metadata, listings, delete by prefix and a transaction from stdin.
func TestCLIKeyValueAPI(t *testing.T) {
	c := startCluster(t, 3)
	run := func(stdin string, args ...string) (string, int) {
		out, errs, code := cli(t, c, stdin, args...)
		return out + errs, code
	}
	out, code := run("", "put", "--cas", "0", "lock", "me")
	require.Equal(t, 0, code, out)
	out, code = run("", "put", "--cas", "0", "lock", "you")
	assert.Equal(t, 4, code, out)
	assert.Contains(t, out, "exists")
	out, code = run("", "get", "-w", "json", "lock")
	require.Equal(t, 0, code, out)
	var e api.ValueBody
	require.NoError(t, json.Unmarshal([]byte(out), &e), out)
	assert.Equal(t, "me", e.Value)
	assert.Equal(t, uint64(1), e.Version)
	_, code = run("", "delete", "--cas", strconv.FormatUint(e.ModIndex+1, 10), "lock")
	assert.Equal(t, 4, code)
	out, code = run("", "delete", "--cas", strconv.FormatUint(e.ModIndex, 10), "lock")
	assert.Equal(t, 0, code, out)

	for _, k := range []string{"cfg/a", "cfg/b", "cfg/c", "other"} {
		out, code := run("value of "+k, "put", k, "-")
		require.Equal(t, 0, code, out)
	}
	out, code = run("", "get", "--prefix", "cfg/")
	assert.Equal(t, 0, code, out)
	assert.Equal(t, "cfg/a\nvalue of cfg/a\ncfg/b\nvalue of cfg/b\ncfg/c\nvalue of cfg/c\n", out)
	out, code = run("", "get", "--prefix", "--keys-only", "--limit", "2", "")
	assert.Equal(t, 0, code, out)
	assert.Equal(t, "cfg/a\ncfg/b\n", out)
	out, code = run("", "get", "--prefix", "--keys-only", "--stale", "-w", "json", "cfg/")
	assert.Equal(t, 0, code, out)
	assert.True(t, json.Valid([]byte(out)), out)

	txn := `{"compare":[{"key":"cfg/a","target":"version","number":1}],
	         "then":[{"op":"put","key":"cfg/a","value":"new"},{"op":"get","key":"other"}],
	         "else":[{"op":"get","key":"cfg/a"}]}`
	out, code = run(txn, "txn", "-")
	assert.Equal(t, 0, code, out)
	assert.Regexp(t, `^SUCCESS \(index \d+\)\nOK put cfg/a\nother\nvalue of other\n$`, out)
	out, code = run(txn, "txn")
	assert.Equal(t, 0, code, out)
	assert.Regexp(t, `^FAILURE \(index \d+\)\ncfg/a\nnew\n$`, out)

	out, code = run("", "delete", "--prefix", "cfg/")
	assert.Equal(t, 0, code, out)
	assert.Contains(t, out, "3 keys deleted")
	out, code = run("", "get", "--prefix", "--keys-only", "")
	assert.Equal(t, 0, code, out)
	assert.Equal(t, "other\n", out)
}

// lockSeconds is how long TestLockRecipeAcrossLeaderKill's processes
// increment: RAFTKV_LOCK_SECONDS, default 6.
func lockSeconds(t *testing.T) time.Duration { return envSeconds(t, "RAFTKV_LOCK_SECONDS", 6) }

// TestLockRecipeAcrossLeaderKill: a lock built from the CLI alone. Three
// workers (each a sequence of real `raftkv` processes) take turns: take
// the lock with `put --cas 0`, read the shared counter with `get`, write
// it back incremented with `put`, release the lock with `delete --cas` of
// the lock's mod_index. The leader is killed (and restarted) meanwhile.
// No increment may be lost: the counter ends at the number of increments
// the workers completed.
func TestLockRecipeAcrossLeaderKill(t *testing.T) {
	c := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), lockSeconds(t))
	defer cancel()

	var wg sync.WaitGroup
	done := make([]int, 3)
	for w := range done {
		wg.Go(func() { done[w] = lockWorker(ctx, t, c, w) })
	}
	// Kill the leader a third of the way in, restart it a little later.
	waitOrDone(ctx, lockSeconds(t)/3)
	l := waitLeader(t, c, 10*time.Second)
	require.NoError(t, c.Kill(l))
	t.Logf("killed leader %s", c.Nodes[l].Name)
	waitOrDone(ctx, time.Second)
	require.NoError(t, c.StartNode(l))
	wg.Wait()

	total := 0
	for _, n := range done {
		total += n
	}
	out, errs, code := cli(t, c, "", "get", "counter")
	require.Equal(t, 0, code, errs)
	got, err := strconv.Atoi(strings.TrimSpace(out))
	require.NoError(t, err)
	t.Logf("increments per worker %v, counter %d", done, got)
	require.Greater(t, total, 3, "too few increments to say anything")
	assert.Equal(t, total, got, "increments lost or doubled")
}

// lockWorker increments the counter under the lock until ctx ends and
// returns how many increments it completed. An exit 3 (outcome unknown)
// is resolved by reading back what the command would have changed: the
// worker alone writes the counter while it holds the lock.
func lockWorker(ctx context.Context, t *testing.T, c *Cluster, id int) int {
	n := 0
	for i := 0; ctx.Err() == nil; i++ {
		me := fmt.Sprintf("worker-%d-%d", id, i)
		// Take the lock.
		for {
			if ctx.Err() != nil {
				return n
			}
			_, errs, code := cli(t, c, "", "put", "--cas", "0", "lock", me)
			if code == 0 {
				break
			}
			if code != 3 && code != 4 {
				t.Errorf("worker %d: put --cas 0 lock: exit %d: %s", id, code, errs)
				return n
			}
			// Held by another worker, or by us through an earlier attempt
			// of unknown outcome (a new process is a new client: its
			// retry would not be recognized, and would fail the compare).
			if v, _, code := cli(t, c, "", "get", "lock"); code == 0 && strings.TrimSpace(v) == me {
				break
			}
		}
		// Read, increment, write; each step retried until definite.
		var cur int
		for {
			out, errs, code := cli(t, c, "", "get", "counter")
			if code == 1 {
				cur = 0
				break
			}
			if code == 0 {
				var err error
				cur, err = strconv.Atoi(strings.TrimSpace(out))
				if err != nil {
					t.Errorf("worker %d: counter %q", id, out)
					return n
				}
				break
			}
			if code != 3 {
				t.Errorf("worker %d: get counter: exit %d: %s", id, code, errs)
				return n
			}
		}
		next := strconv.Itoa(cur + 1)
		for {
			_, _, code := cli(t, c, "", "put", "counter", next)
			if code == 0 {
				break
			}
			if v, _, gc := cli(t, c, "", "get", "counter"); gc == 0 && strings.TrimSpace(v) == next {
				break
			}
		}
		n++
		// Release: delete the lock at the mod_index our put gave it.
		for deleting := false; ; {
			out, errs, code := cli(t, c, "", "get", "-w", "json", "lock")
			if code == 3 {
				continue
			}
			if code == 1 && deleting {
				break // an earlier delete of unknown outcome did it
			}
			var e api.ValueBody
			if code != 0 || json.Unmarshal([]byte(out), &e) != nil || e.Value != me {
				t.Errorf("worker %d: the lock is not ours any more (exit %d): %s %s", id, code, out, errs)
				return n
			}
			deleting = true
			if _, _, code := cli(t, c, "", "delete", "--cas", strconv.FormatUint(e.ModIndex, 10), "lock"); code == 0 {
				break
			}
		}
	}
	return n
}
