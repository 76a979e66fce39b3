package backup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"raftkv/src/kv"
	"raftkv/src/node"
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

// seedNode writes the snapshot into the folder disk was opened on, through
// the storage package, so the folder is exactly what a node that installed
// this snapshot would have written: the snapshot file (carrying conf, the
// new cluster's configuration), and a log that starts after it with the
// hard state (term = the snapshot's term, commit = its index; no vote).
// The storage refuses a snapshot file that no log record names, so
// copying a snapshot file by hand would not do.
func seedNode(disk *storage.Storage, s Seed, conf raft.Membership) error {
	err := disk.SaveSnapshot(raft.Snapshot{Index: s.Index, Term: s.Term, Peers: conf.Voters(), Membership: &conf, Data: s.State})
	if err == nil {
		// A node's term is never below the term of its last entry (the
		// core refuses messages whose log term exceeds their term).
		err = disk.Save(raft.HardState{Term: s.Term, Vote: raft.None, Commit: s.Index}, nil)
	}
	return err
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
	// Opening a folder gives it its incarnation (storage/identity.go); the
	// seeded configuration names every node under its own, as a bootstrap
	// would, so that each counts as the member it is.
	disks := make([]*storage.Storage, len(dirs))
	defer func() {
		for _, d := range disks {
			if d != nil {
				d.Close()
			}
		}
	}()
	incs := make([]raft.Incarnation, len(dirs))
	for i, d := range dirs {
		disk, rec, err := storage.Open(storage.Options{Dir: d})
		if err != nil {
			return fmt.Errorf("open storage in %s: %w (folders opened before it: %v; remove them before trying again)", d, err, dirs[:i])
		}
		disks[i], incs[i] = disk, rec.Identity.Incarnation
	}
	conf := node.BootstrapMembership(s.Nodes, incs)
	for i, d := range dirs {
		err := seedNode(disks[i], s, conf)
		if cerr := disks[i].Close(); err == nil {
			err = cerr
		}
		disks[i] = nil
		if err != nil {
			return fmt.Errorf("seed %s: %w (remove %v before trying again)", d, err, dirs)
		}
		if progress != nil {
			fmt.Fprintf(progress, "seeded %s (%d/%d)\n", d, i+1, len(dirs))
		}
	}
	return nil
}
