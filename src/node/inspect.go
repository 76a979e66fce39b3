package node

import (
	"encoding/json"
	"fmt"
	"io"

	"raftkv/src/kv"
	"raftkv/src/raft"
	"raftkv/src/storage"
)

// Inspection is what `raftkv inspect DIR` prints: a node's state recovered
// from its folder exactly as the node would recover it on start, without
// changing any file. StateMachine has the same shape as in snapshots and
// statemachine.json, so the same jq expressions work on all three.
type Inspection struct {
	Dir       string         `json:"Dir"`
	CleanStop bool           `json:"CleanStop"`
	TornTail  bool           `json:"TornTail"`
	Repairs   []string       `json:"Repairs,omitempty"`
	HardState raft.HardState `json:"HardState"`
	Snapshot  *snapshotInfo  `json:"Snapshot"`
	LogFirst  uint64         `json:"LogFirstIndex"`
	LogLast   uint64         `json:"LogLastIndex"`
	Applied   uint64         `json:"AppliedIndex"`
	// Incarnation is the folder's (see storage.Identity); Membership the
	// configuration as of AppliedIndex (absent for a folder from before
	// configurations were in the log, or one that never got one).
	Incarnation raft.Incarnation `json:"Incarnation"`
	Membership  *raft.Membership `json:"Membership,omitempty"`
	SM          json.RawMessage  `json:"StateMachine"`
	// Error is set when the folder reads whole but lacks records that were
	// synced (the node refuses to start on it): the rest is what is left.
	Error string `json:"Error,omitempty"`
}

type snapshotInfo struct {
	Index uint64 `json:"Index"`
	Term  uint64 `json:"Term"`
}

// Inspect recovers the node folder dir read-only: the newest snapshot plus
// every log entry up to the persisted commit index, applied to a fresh
// state machine. Entries after the persisted commit index may or may not
// have been committed by the cluster; they are counted but not applied.
// It takes no lock and writes nothing, so it works next to a running node.
//
// When the folder lacks records that were synced (the node refuses to start
// on it), Inspect returns both what is left, with Error set, and the error:
// the operator sees the damage and what a wipe would throw away.
func Inspect(dir string) (*Inspection, error) {
	disk, rec, err := storage.Open(storage.Options{Dir: dir, ReadOnly: true})
	if err != nil && rec == nil {
		return nil, err
	}
	if disk != nil {
		defer disk.Close()
	}
	out, ierr := inspect(dir, rec)
	if ierr != nil {
		return nil, ierr
	}
	if err != nil {
		out.Error = err.Error()
	}
	return out, err
}

func inspect(dir string, rec *storage.Recovered) (*Inspection, error) {
	store := kv.New(kv.Options{})
	out := &Inspection{Dir: dir, CleanStop: rec.CleanStop, TornTail: rec.TornTail, Repairs: rec.Repairs, HardState: rec.HardState,
		Incarnation: rec.Identity.Incarnation}
	if rec.Snapshot != nil {
		if err := store.RestoreChain(rec.Snapshot.Data, rec.Deltas); err != nil {
			return nil, fmt.Errorf("snapshot %d in %s: %w", rec.Snapshot.Index, dir, err)
		}
		out.Snapshot = &snapshotInfo{Index: rec.Snapshot.Index, Term: rec.Snapshot.Term}
		out.Applied = rec.Snapshot.Index
		out.Membership = rec.Snapshot.Membership
	}
	if n := len(rec.Entries); n > 0 {
		out.LogFirst, out.LogLast = rec.Entries[0].Index, rec.Entries[n-1].Index
	}
	for _, e := range rec.Entries {
		if e.Index > rec.HardState.Commit {
			break
		}
		switch e.Type {
		case raft.EntryNoop:
			store.ApplyNoop(e.Index)
		case raft.EntryConfig:
			store.ApplyNoop(e.Index)
			conf, err := raft.DecodeMembership(e.Data)
			if err != nil {
				return nil, fmt.Errorf("configuration entry %d in %s: %w", e.Index, dir, err)
			}
			out.Membership = &conf
		default:
			store.Apply(e.Index, e.Data)
		}
		out.Applied = e.Index
	}
	sm, err := store.Snapshot()
	if err != nil {
		return nil, err
	}
	out.SM = sm
	return out, nil
}

// WriteJSON prints the inspection as indented JSON.
func (in *Inspection) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(in)
}
