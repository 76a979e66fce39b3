//go:build race

package raft

// raceEnabled: the race detector slows the core ten-fold and changes what
// the heap holds, so measurements skip under it.
const raceEnabled = true
