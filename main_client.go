package main

import (
	"fmt"
	"os"
)

// runClientCommand runs every command but "node"; it returns the exit code
// of CONTRACT.md: 0 ok, 1 not found, 2 usage or bad input, 3 unavailable.
func runClientCommand(cmd string, args []string) int {
	fmt.Fprintf(os.Stderr, "raftkv %s: unknown or not yet built command\n\n%s", cmd, usage)
	return 2
}
