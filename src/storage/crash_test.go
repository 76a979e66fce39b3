package storage

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/raft"
)

var (
	crashIterations = flag.Int("crash.iterations", 40, "kill-and-recover rounds of TestCrashRecovery")
	crashSeed       = flag.Uint64("crash.seed", 0, "seed of TestCrashRecovery (0: from the clock, logged)")
)

const (
	crashDirEnv  = "RAFTKV_STORAGE_CRASH_DIR"
	crashSeedEnv = "RAFTKV_STORAGE_CRASH_SEED"
)

// TestCrashChild is the child of TestCrashRecovery: it opens the folder,
// checks nothing, and appends batches forever, printing "ACK <last index>"
// after each Save returned (fsync done). Now and then it overwrites a suffix
// with identical entries (a truncate record) and takes a snapshot.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("only run as the child of TestCrashRecovery")
	}
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	rng := rand.New(rand.NewPCG(seed, 1))
	s, _, err := Open(Options{Dir: dir, SegmentBytes: 32 << 10})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(3)
	}
	for {
		last := s.LastIndex()
		first := last + 1
		if rng.IntN(8) == 0 && last > s.SnapshotIndex()+5 {
			first = last - uint64(rng.IntN(5)) // rewrite a suffix, same content
		}
		n := uint64(1 + rng.IntN(40))
		end := max(first+n-1, last)
		// Commit lags so that a rewrite never touches a committed entry
		// (Save refuses that, as Raft never does it).
		commit := uint64(0)
		if end > 5 {
			commit = end - 5
		}
		if err := s.Save(raft.HardState{Term: testTerm(end), Vote: 1, Commit: commit}, testEntries(first, end)); err != nil {
			fmt.Println("ERR", err)
			os.Exit(3)
		}
		fmt.Printf("ACK %d\n", end)
		if rng.IntN(30) == 0 && end > 10 {
			i := end - uint64(rng.IntN(10))
			base, _, _ := s.SnapshotChain()
			from := s.SnapshotIndex()
			var err error
			switch {
			case i <= from:
			case base > 0 && rng.IntN(3) != 0:
				// A delta on top of the chain (killed during it: a delta write).
				err = s.SaveSnapshotDelta(raft.Snapshot{Index: i, Term: testTerm(i), Peers: []raft.ID{0, 1, 2}}, from, snapDelta(i))
			default:
				err = s.SaveSnapshot(raft.Snapshot{Index: i, Term: testTerm(i), Peers: []raft.ID{0, 1, 2}, Data: snapData(i)})
			}
			if err == nil && base < from && rng.IntN(4) == 0 {
				// A merge of the chain into a base at its end (killed during it).
				err = s.SaveSnapshot(raft.Snapshot{Index: s.SnapshotIndex(), Term: testTerm(s.SnapshotIndex()), Peers: []raft.ID{0, 1, 2}, Data: snapData(s.SnapshotIndex())})
			}
			if err != nil {
				fmt.Println("ERR", err)
				os.Exit(3)
			}
		}
	}
}

// TestCrashRecovery kills a child that appends batches with SIGKILL at
// random moments, then checks that recovery finds every batch the child
// reported durable and nothing that was never written.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -crash.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	dir := t.TempDir()
	var acked uint64
	torn := 0
	for it := 0; it < *crashIterations; it++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, fmt.Sprintf("%s=%d", crashSeedEnv, rng.Uint64()))
		out, err := cmd.StdoutPipe()
		require.NoError(t, err)
		require.NoError(t, cmd.Start())
		// Kill after a random number of acknowledged batches: the child is
		// then somewhere in its next write, fsync, snapshot or rotation.
		want := rng.IntN(60)
		sc := bufio.NewScanner(out)
		for got := 0; got <= want && sc.Scan(); {
			line := sc.Text()
			if idx, ok := strings.CutPrefix(line, "ACK "); ok {
				i, err := strconv.ParseUint(idx, 10, 64)
				require.NoError(t, err)
				require.GreaterOrEqual(t, i, acked, "acknowledged index went back")
				acked = i
				got++
			} else if strings.HasPrefix(line, "ERR") {
				t.Fatalf("child: %s", line)
			}
		}
		require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
		// Reports written before the kill landed count as acknowledged too.
		rest, _ := io.ReadAll(out)
		for _, line := range strings.Split(string(rest), "\n") {
			if idx, ok := strings.CutPrefix(line, "ACK "); ok {
				i, err := strconv.ParseUint(idx, 10, 64)
				require.NoError(t, err)
				acked = max(acked, i)
			}
		}
		_ = cmd.Wait()

		_, rec, err := openE(t, dir, readOnly)
		if err != nil {
			des, _ := os.ReadDir(dir)
			for _, de := range des {
				b, _ := os.ReadFile(filepath.Join(dir, de.Name()))
				if len(b) > 6000 {
					b = append(b[:1000:1000], append([]byte("\n...\n"), b[len(b)-5000:]...)...)
				}
				t.Logf("%s:\n%s", de.Name(), b)
			}
		}
		require.NoError(t, err, "iteration %d", it)
		if rec.TornTail {
			torn++
		}
		checkRecovered(t, rec, acked)
	}
	// The writable open repairs what the read-only ones only reported.
	s, rec := openT(t, dir)
	checkRecovered(t, rec, acked)
	require.NoError(t, s.Close())
	t.Logf("%d iterations, %d ended with a torn tail, last acknowledged index %d", *crashIterations, torn, acked)
}

// checkRecovered checks that rec holds a valid snapshot and entries exactly
// as written (content is a function of the index), up to at least acked.
func checkRecovered(t *testing.T, rec *Recovered, acked uint64) {
	t.Helper()
	next := uint64(1)
	if rec.Snapshot != nil {
		assert.Equal(t, snapData(rec.Snapshot.Index), recState(t, rec))
		assert.Equal(t, testTerm(rec.Snapshot.Index), rec.Snapshot.Term)
		next = rec.Snapshot.Index + 1
	}
	for k, e := range rec.Entries {
		if !assert.Equal(t, testEntry(next+uint64(k)), e, "entry %d of %d", k, len(rec.Entries)) {
			return
		}
	}
	last := next - 1 + uint64(len(rec.Entries))
	assert.GreaterOrEqual(t, last, acked, "an acknowledged entry is missing")
	assert.LessOrEqual(t, rec.HardState.Commit, last)
}
