package storage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/crc32"

	"raftkv/src/raft"
)

// fastSnapshot reads a snapshot file in the spelling writeSnapshotFile
// writes without running encoding/json over the state machine: the small
// head is decoded, the state machine is the bytes up to the fixed tail
// (,"StateMachineCRC32C":"<8 hex>"}), checked by its CRC and by the JSON
// validator. Decoding a state of hundreds of megabytes with encoding/json
// (only to find where it ends) took longer than the node's whole restart
// should. ok is false when the file is spelled otherwise; the caller then
// decodes it the slow way, which reports damage with its offset.
func fastSnapshot(b []byte) (f snapshotFile, ok bool) {
	const key = `"StateMachine":`
	const tailLen = len(`,"StateMachineCRC32C":"00000000"}`)
	end := len(b)
	for end > 0 && isSpace(b[end-1]) {
		end--
	}
	if end < tailLen || !bytes.HasPrefix(b[end-tailLen:], []byte(`,"StateMachineCRC32C":"`)) {
		return f, false
	}
	tail := b[end-tailLen : end]
	crc := string(tail[len(`,"StateMachineCRC32C":"`) : len(`,"StateMachineCRC32C":"`)+8])
	if tail[len(tail)-2] != '"' || tail[len(tail)-1] != '}' || !isLowerHex8(crc) {
		return f, false
	}
	// The head is everything before the first "StateMachine": that follows
	// a complete head object's members: decode it as an object closed by hand.
	i := bytes.Index(b, []byte(key))
	if i < 1 || i > 1<<20 || b[i-1] != ',' {
		return f, false
	}
	var head struct {
		Index      *uint64          `json:"Index"`
		Term       *uint64          `json:"Term"`
		Peers      []raft.ID        `json:"Peers"`
		Membership *raft.Membership `json:"Membership"`
	}
	headJSON := append(bytes.Clone(b[:i-1]), '}')
	if strictUnmarshal(headJSON, &head) != nil {
		return f, false
	}
	data := trimSpace(b[i+len(key) : end-tailLen])
	// The checksum and the JSON check each read the whole state: on two
	// cores at once (a restart at a million keys waits for both).
	sum := make(chan uint32, 1)
	go func() { sum <- crc32.Checksum(data, castagnoli) }()
	valid := validJSON(data)
	if fmt.Sprintf("%08x", <-sum) != crc || !valid {
		return f, false
	}
	f.Index, f.Term, f.Peers, f.Membership = head.Index, head.Term, head.Peers, head.Membership
	f.StateMachine = json.RawMessage(data)
	f.StateMachineCRC32C = &crc
	return f, true
}
