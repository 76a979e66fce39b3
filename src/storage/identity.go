package storage

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"raftkv/src/raft"
)

// identityFile holds the folder's incarnation: {"incarnation": "<16 hex>"}.
// It is written once, when the folder is first opened for writing, and never
// changes: a folder that lost its contents comes back without it and gets a
// new one, which is what tells the cluster that whatever the old one
// promised (votes, acknowledged entries) is gone (see raft/membership.go).
const identityFile = "identity.json"

type identity struct {
	Incarnation raft.Incarnation `json:"incarnation"`
}

// Identity is what Open found or made of the folder's incarnation.
type Identity struct {
	Incarnation raft.Incarnation
	// Created: the folder had no identity and no state; a new random
	// incarnation was made (with ReadOnly: would be).
	Created bool
	// Adopted: the folder had state but no identity: it was written by a
	// version that predates incarnations, and keeps incarnation 0, the one
	// such a cluster's members have (raft.Config.Peers).
	Adopted bool
}

// loadIdentity reads the folder's identity, or makes one: a random
// incarnation for a folder with no state, 0 for a folder with state written
// before identities existed. empty tells which. With readOnly nothing is
// written.
func loadIdentity(dir string, empty, readOnly bool) (Identity, error) {
	path := filepath.Join(dir, identityFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		var id identity
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&id); err != nil {
			return Identity{}, &CorruptError{File: identityFile, Offset: -1, Reason: "identity does not parse: " + err.Error()}
		}
		return Identity{Incarnation: id.Incarnation}, nil
	case !errors.Is(err, os.ErrNotExist):
		return Identity{}, fmt.Errorf("storage: %w", err)
	}
	var out Identity
	if empty {
		var buf [8]byte
		for out.Incarnation == 0 {
			if _, err := rand.Read(buf[:]); err != nil {
				return Identity{}, fmt.Errorf("storage: incarnation: %w", err)
			}
			out.Incarnation = raft.Incarnation(binary.LittleEndian.Uint64(buf[:]))
		}
		out.Created = true
	} else {
		out.Adopted = true
	}
	if readOnly {
		return out, nil
	}
	data, _ := json.Marshal(identity{Incarnation: out.Incarnation})
	if err := writeAtomic(dir, identityFile, data, []byte("\n")); err != nil {
		return Identity{}, fmt.Errorf("storage: write %s: %w", path, err)
	}
	return out, nil
}
