package api

import "fmt"

// Role is what a client of the HTTP API may do. Roles are ordered: each
// may do everything the ones below it may.
type Role uint8

const (
	// RoleNone: an anonymous client; only the routes open to everyone.
	RoleNone Role = iota
	// RoleReadOnly: reads (GET of keys, status, cluster, metrics summary).
	RoleReadOnly
	// RoleReadWrite: reads and writes of keys (put, append, delete, txn,
	// leases).
	RoleReadWrite
	// RoleAdmin: everything, membership, leader transfer and snapshots
	// included.
	RoleAdmin
)

var roleNames = [...]string{RoleNone: "none", RoleReadOnly: "read-only", RoleReadWrite: "read-write", RoleAdmin: "admin"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return fmt.Sprintf("Role(%d)", r)
}

// ParseRole parses "read-only", "read-write" or "admin" (the names a
// tokens file and Raft-Forwarded-Role use; "none" is no role to give).
func ParseRole(s string) (Role, error) {
	for r := RoleReadOnly; r <= RoleAdmin; r++ {
		if roleNames[r] == s {
			return r, nil
		}
	}
	return RoleNone, fmt.Errorf("role %q: want read-only, read-write or admin", s)
}
