package api

import "fmt"

// Op is an operation of the key-value API. Its value is its name in every
// place the contract shows one: the CLI command, a data-file line, the "op"
// of a log entry and of a client record.
type Op string

// The operations.
const (
	OpPut    Op = "put"    // set Key to Value
	OpAppend Op = "append" // append Value to Key's value; creates Key if absent
	OpGet    Op = "get"    // read Key
	OpDelete Op = "delete" // remove Key; deleting an absent key is not an error
)

// String returns the operation's name.
func (op Op) String() string { return string(op) }

// Valid reports whether op is one of the operations.
func (op Op) Valid() bool {
	switch op {
	case OpPut, OpAppend, OpGet, OpDelete:
		return true
	}
	return false
}

// HasValue reports whether op carries a value (put and append).
func (op Op) HasValue() bool { return op == OpPut || op == OpAppend }

// IsWrite reports whether op changes the state (every op but get).
func (op Op) IsWrite() bool { return op != OpGet }

// ParseOp returns the operation named s, or an error naming s.
func ParseOp(s string) (Op, error) {
	if op := Op(s); op.Valid() {
		return op, nil
	}
	return "", fmt.Errorf("unknown operation %q", s)
}
