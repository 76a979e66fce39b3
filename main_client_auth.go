package main

// TLS and tokens on the client side: hints for refusals, and
// `raftkv certs token`. (The flags, --cacert, --cert, --key, --token, are
// config.ClientAuthFlags.)

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"

	"raftkv/src/api"
	"raftkv/src/certs"
	"raftkv/src/config"
)

// authHint tells a person what to do about a 401 or 403.
func authHint(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return " (give a token: --token TOKEN or --token @FILE, or " + config.EnvToken + ")"
	case http.StatusForbidden:
		return " (the token's role does not allow this)"
	}
	return ""
}

const certsTokenUsage = `  raftkv certs token NAME --role read-only|read-write|admin [--dir certs] [--force]
      makes a bearer token for the HTTP API: DIR/NAME.token (0600, give it to
      the client: --token @DIR/NAME.token) and its hash in DIR/tokens.json
      (give that to every node: --tokens DIR/tokens.json)
`

// runCertsToken makes a token (certs.AddToken).
func runCertsToken(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("certs token")
	dir := fs.String("dir", "certs", "the certificates folder")
	role := fs.String("role", "", "read-only, read-write or admin")
	force := fs.Bool("force", false, "replace a token of the same name")
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, certsUsage)
		return exitOK
	}
	if err != nil || len(pos) != 1 {
		if err == nil {
			err = errors.New("want one NAME")
		}
		fmt.Fprintf(stderr, "raftkv certs token: %v\n\n%s", err, certsUsage)
		return exitUsage
	}
	r, err := api.ParseRole(*role)
	if err != nil {
		fmt.Fprintf(stderr, "raftkv certs token: --role: %v\n", err)
		return exitUsage
	}
	path, err := certs.AddToken(*dir, pos[0], r, *force)
	if err != nil {
		fmt.Fprintf(stderr, "raftkv certs token: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "wrote %s (%s) and its hash into %s\n", path, r, certs.TokensPath(*dir))
	return exitOK
}
