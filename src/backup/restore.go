package backup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"raftkv/src/kv"
	"raftkv/src/raft"
	"raftkv/src/storage"
)

// Seed is what Restore writes into every node's folder.
type Seed struct {
	Header
	// State is the state machine's JSON, already checked (File.ReadState).
	State []byte
	// Nodes are the new cluster's node names in hostfile order (the
	// position is the node's ID).
	Nodes []string
}

// CheckState loads the state into a fresh state machine, as a node will on
// start, so that a backup the state machine would refuse is refused before
// any folder is written. It returns the number of keys.
func CheckState(h Header, state []byte) error {
	st := kv.New(kv.Options{})
	if err := st.Restore(state); err != nil {
		return fmt.Errorf("%w: the state machine refuses the state: %v", ErrDamaged, err)
	}
	if st.Len() != h.Keys {
		return fmt.Errorf("%w: the state holds %d keys, the header says %d", ErrDamaged, st.Len(), h.Keys)
	}
	return nil
}

// CheckEmpty refuses to seed a folder that holds anything: it may be a
// running or a stopped node's data, and seeding would mix two histories.
func CheckEmpty(dirs []string) error {
	var errs []error
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			errs = append(errs, err)
		case len(ents) > 0:
			errs = append(errs, fmt.Errorf("%s is not empty (%d entries, e.g. %s): refusing to restore into it", d, len(ents), ents[0].Name()))
		}
	}
	return errors.Join(errs...)
}

// SeedNode writes the snapshot into dir through the storage package, so
// the folder is exactly what a node that installed this snapshot would
// have written: the snapshot file, and a log that starts after it with the
// hard state (term = the snapshot's term, commit = its index; no vote).
// The storage refuses a snapshot file that no log record names, so
// copying a snapshot file by hand would not do.
func SeedNode(dir string, s Seed) error {
	if err := CheckEmpty([]string{dir}); err != nil {
		return err
	}
	disk, _, err := storage.Open(storage.Options{Dir: dir})
	if err != nil {
		return fmt.Errorf("open storage in %s: %w", dir, err)
	}
	peers := make([]raft.ID, len(s.Nodes))
	for i := range s.Nodes {
		peers[i] = raft.ID(i)
	}
	err = disk.SaveSnapshot(raft.Snapshot{Index: s.Index, Term: s.Term, Peers: peers, Data: s.State})
	if err == nil {
		// A node's term is never below the term of its last entry (the
		// core refuses messages whose log term exceeds their term).
		err = disk.Save(raft.HardState{Term: s.Term, Vote: raft.None, Commit: s.Index}, nil)
	}
	if cerr := disk.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("seed %s: %w", dir, err)
	}
	return nil
}

// Restore seeds dataDir/<name> for every node, after checking that none
// of the folders holds anything. progress, if not nil, gets a line per
// node.
func Restore(dataDir string, s Seed, progress io.Writer) error {
	if len(s.Nodes) == 0 {
		return errors.New("no nodes to restore")
	}
	dirs := make([]string, len(s.Nodes))
	for i, n := range s.Nodes {
		dirs[i] = filepath.Join(dataDir, n)
	}
	if err := CheckEmpty(dirs); err != nil {
		return err
	}
	for i, d := range dirs {
		if err := SeedNode(d, s); err != nil {
			return fmt.Errorf("%w (folders seeded before it: %v; remove them before trying again)", err, dirs[:i])
		}
		if progress != nil {
			fmt.Fprintf(progress, "seeded %s (%d/%d)\n", d, i+1, len(dirs))
		}
	}
	return nil
}
