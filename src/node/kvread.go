package node

import "raftkv/src/kv"

// Entry reads key's value and metadata in the local state machine, and
// the applied index they reflect (a stale read's own index).
func (s *Node) Entry(key string) (string, kv.Meta, bool, uint64) { return s.kv.Entry(key) }

// Range lists keys of the local state machine (see kv.Store.Range).
func (s *Node) Range(r kv.RangeRequest) kv.RangeResult { return s.kv.Range(r) }
