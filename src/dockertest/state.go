package dockertest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"raftkv/src/api"
	"raftkv/src/datafile"
)

// StateFile is the file a node writes at a clean stop (CONTRACT.md,
// "Persistence"): persistence/<name>/statemachine.json.
const StateFile = "statemachine.json"

// NodeState is a node's state machine as persisted at its clean stop.
type NodeState struct {
	Name         string
	Index, Term  uint64
	AppliedIndex uint64
	Contents     map[string]string
	Sessions     int // how many client sessions the state machine holds
	// Digest is the SHA-256 of Contents as canonical JSON (keys sorted),
	// shortened; equal digests mean equal maps.
	Digest string
}

// ReadNodeState reads persistence/<name>/statemachine.json under dir.
func ReadNodeState(persistence, name string) (NodeState, error) {
	path := filepath.Join(persistence, name, StateFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return NodeState{}, err
	}
	var f struct {
		Index, Term  uint64
		StateMachine struct {
			Contents     map[string]string
			Sessions     map[string]json.RawMessage
			AppliedIndex uint64
		}
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return NodeState{}, fmt.Errorf("%s: %w", path, err)
	}
	st := NodeState{
		Name: name, Index: f.Index, Term: f.Term,
		AppliedIndex: f.StateMachine.AppliedIndex, Contents: f.StateMachine.Contents,
		Sessions: len(f.StateMachine.Sessions),
	}
	if st.Contents == nil {
		st.Contents = map[string]string{}
	}
	st.Digest = Digest(st.Contents)
	return st, nil
}

// Digest is a short SHA-256 of the map as canonical JSON: the same as
// `jq -cS .StateMachine.Contents | sha256sum` up to JSON escaping.
func Digest(m map[string]string) string {
	b, _ := json.Marshal(m) // encoding/json sorts map keys
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// Agreement compares the given nodes' state machines, prints one line per
// node (applied index, keys, digest) and a verdict, and returns an error
// naming the first difference.
func Agreement(w io.Writer, states []NodeState) error {
	for _, s := range states {
		fmt.Fprintf(w, "  %-3s applied_index=%-5d term=%-3d keys=%-3d sessions=%d contents_sha256=%s\n",
			s.Name, s.AppliedIndex, s.Term, len(s.Contents), s.Sessions, s.Digest)
	}
	if len(states) == 0 {
		return fmt.Errorf("no state machines to compare")
	}
	ref := states[0]
	for _, s := range states[1:] {
		if s.Digest != ref.Digest {
			fmt.Fprintf(w, "  DISAGREE: %s and %s hold different state machines:\n", ref.Name, s.Name)
			for _, line := range diffMaps(ref, s) {
				fmt.Fprintf(w, "    %s\n", line)
			}
			return fmt.Errorf("state machines differ: %s (%s) vs %s (%s)", ref.Name, ref.Digest, s.Name, s.Digest)
		}
	}
	names := make([]string, len(states))
	for i, s := range states {
		names[i] = s.Name
	}
	fmt.Fprintf(w, "  AGREE: %s hold identical StateMachine.Contents (%d keys, sha256 %s)\n",
		strings.Join(names, ", "), len(ref.Contents), ref.Digest)
	return nil
}

// diffMaps lists the keys on which a and b differ (at most 20).
func diffMaps(a, b NodeState) []string {
	keys := map[string]bool{}
	for k := range a.Contents {
		keys[k] = true
	}
	for k := range b.Contents {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var out []string
	for _, k := range sorted {
		va, oka := a.Contents[k]
		vb, okb := b.Contents[k]
		if va == vb && oka == okb {
			continue
		}
		out = append(out, fmt.Sprintf("%q: %s=%s %s=%s", k, a.Name, showValue(va, oka), b.Name, showValue(vb, okb)))
		if len(out) == 20 {
			out = append(out, "...")
			break
		}
	}
	return out
}

func showValue(v string, ok bool) string {
	if !ok {
		return "(absent)"
	}
	return fmt.Sprintf("%q", v)
}

// ReadRecord reads persistence/<client>/record.json.
func ReadRecord(persistence, client string) (*api.ClientRecord, error) {
	path := filepath.Join(persistence, client, api.RecordFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r api.ClientRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// History turns a client's record into the checker's input. A client that
// was stopped before it sent its whole data file may have had one command in
// flight, sent but not recorded: datafile (the client's data file on this
// machine) supplies it, as an "unknown" write.
func History(r *api.ClientRecord, datafilePath string) (ClientHistory, error) {
	h := ClientHistory{Client: r.Client}
	for _, c := range r.Commands {
		h.Ops = append(h.Ops, Op{
			Client: r.Client, Line: c.Line, Kind: c.Op, Key: c.Key, Value: c.Value, Prefix: c.Prefix,
			Outcome: c.Outcome, Found: c.Found, Read: c.Read, Start: c.Start, End: c.End,
		})
	}
	if r.AllSent || datafilePath == "" {
		return h, nil
	}
	f, err := os.Open(datafilePath)
	if err != nil {
		return h, err
	}
	defer f.Close()
	cmds, _ := datafile.Parse(f, datafilePath)
	if n := len(r.Commands); n < len(cmds) {
		c := cmds[n]
		if c.Op.IsWrite() {
			h.Ops = append(h.Ops, Op{Client: r.Client, Line: c.Line, Kind: c.Op, Key: c.Key, Value: c.Value, Prefix: c.Prefix,
				Outcome: api.OutcomeUnknown, InFlight: true})
		}
	}
	return h, nil
}

// CopyTree copies the folder src to dst (files and folders; dst is created).
func CopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// CleanPersistence empties persistence/ but for .gitkeep.
func CleanPersistence(dir string) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Name() == ".gitkeep" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
