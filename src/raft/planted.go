package raft

// PlantedBug is a bug planted on purpose into the core. It is
// NoPlantedBug in every runtime; only the simulator's self-test (simtest's
// TestPlantedMembershipBugsAreCaught) sets Config.Planted, to show that the
// simulator catches each of these bugs.
type PlantedBug uint8

const (
	// NoPlantedBug is the correct core.
	NoPlantedBug PlantedBug = iota
	// PlantConfChangeBeforeTermCommit lets a new leader append a
	// configuration entry before an entry of its own term is committed: the
	// bug in the original single-server algorithm that the thesis's errata
	// fixed.
	PlantConfChangeBeforeTermCommit
	// PlantCountAnyIncarnation counts votes and acknowledgements from any
	// incarnation of a member, and lets a node whose incarnation is not a
	// member vote: a node that lost its disk is taken for the node it was.
	PlantCountAnyIncarnation
	// PlantCountLearners counts learners' acknowledgements towards commit.
	PlantCountLearners
	// PlantRejoinOnAnyAnswer takes any answer from another incarnation of
	// a member as a request to rejoin, as an earlier version did: a
	// delayed answer from an incarnation already replaced puts it back.
	PlantRejoinOnAnyAnswer
	// PlantWindowServesEvicted: a leader whose log window evicted the
	// entries a follower needs serves what the window holds in their
	// place instead of reading them back from storage.
	PlantWindowServesEvicted
)
