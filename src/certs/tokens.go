package certs

// Bearer tokens of the HTTP API.
//
// A node keeps no token itself, only the SHA-256 of each, with a name and
// a role, in a tokens file (--tokens, RAFTKV_TOKENS):
//
//	{"tokens": [
//	  {"name": "admin", "role": "admin", "sha256": "3f1c...e0"},
//	  {"name": "app", "role": "read-write", "sha256": "9a0b...77"}
//	]}
//
// Why hashes: the file is on every node (and in a Kubernetes Secret, a
// backup, a support bundle); a copy of it lets nobody in. Why a plain
// SHA-256 and not bcrypt: tokens are 32 random bytes, so there is nothing
// to brute-force, and a check costs one hash per request instead of tens
// of milliseconds. A lookup is a map access by the hash of what the
// client sent: its timing tells an attacker only about hashes of their own
// guesses.
//
// `raftkv certs token NAME --role R --dir D` makes a token, writes it to
// D/NAME.token (0600, for the client) and adds its hash to D/tokens.json.

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"raftkv/src/api"
)

// TokensFile is the tokens file's name in a certificates folder.
const TokensFile = "tokens.json"

// tokenPrefix marks raftkv tokens, so that secret scanners and people
// recognise one in a log or a repository.
const tokenPrefix = "rkv_"

// TokensPath is dir/tokens.json.
func TokensPath(dir string) string { return filepath.Join(dir, TokensFile) }

// TokenPath is dir/NAME.token, where `raftkv certs token` writes a token.
func TokenPath(dir, name string) string { return filepath.Join(dir, name+".token") }

// TokenEntry is one token of a tokens file.
type TokenEntry struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	SHA256 string `json:"sha256"` // hex of the SHA-256 of the token
}

type tokensDoc struct {
	Tokens []TokenEntry `json:"tokens"`
}

// Identity is who a token stands for.
type Identity struct {
	Name string
	Role api.Role
}

// Tokens are a node's accepted tokens, by hash.
type Tokens struct {
	byHash map[[sha256.Size]byte]Identity
}

// Lookup returns the identity of token, if it is one of t's.
func (t *Tokens) Lookup(token string) (Identity, bool) {
	id, ok := t.byHash[sha256.Sum256([]byte(token))]
	return id, ok
}

// Len is the number of tokens.
func (t *Tokens) Len() int { return len(t.byHash) }

// ParseTokens reads a tokens file's content; path names it in errors. Every
// problem is reported: unknown fields, an empty list, a missing or repeated
// name, a bad role, a hash that is not 64 hex digits or is repeated.
func ParseTokens(path string, b []byte) (*Tokens, error) {
	var doc tokensDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: more than one JSON value", path)
	}
	var errs []error
	if len(doc.Tokens) == 0 {
		errs = append(errs, fmt.Errorf("%s: no tokens (make one with `raftkv certs token NAME --role ROLE`)", path))
	}
	t := &Tokens{byHash: make(map[[sha256.Size]byte]Identity, len(doc.Tokens))}
	names := map[string]bool{}
	for i, e := range doc.Tokens {
		where := fmt.Sprintf("%s: tokens[%d]", path, i)
		if e.Name == "" {
			errs = append(errs, fmt.Errorf("%s: no name", where))
		} else if names[e.Name] {
			errs = append(errs, fmt.Errorf("%s: name %q is used twice", where, e.Name))
		}
		names[e.Name] = true
		role, err := api.ParseRole(e.Role)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		var h [sha256.Size]byte
		if n, err := hex.Decode(h[:], []byte(e.SHA256)); err != nil || n != sha256.Size || len(e.SHA256) != 2*sha256.Size {
			errs = append(errs, fmt.Errorf("%s: sha256 %.70q is not 64 hex digits", where, e.SHA256))
			continue
		}
		if _, dup := t.byHash[h]; dup {
			errs = append(errs, fmt.Errorf("%s: the same token hash is listed twice", where))
		}
		t.byHash[h] = Identity{Name: e.Name, Role: role}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// LoadTokens reads a tokens file.
func LoadTokens(path string) (*Tokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	return ParseTokens(path, b)
}

// NewToken returns a fresh token: "rkv_" and 32 random bytes in hex.
func NewToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("certs: random token: %w", err)
	}
	return tokenPrefix + hex.EncodeToString(b[:]), nil
}

// HashToken is the hex SHA-256 a tokens file holds for token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// AddToken makes a token named name with role, writes it to
// dir/NAME.token (0600) and adds its hash to dir/tokens.json (made if
// missing). Without force, a name already in the tokens file or an
// existing token file is refused and nothing is written; with force the
// old entry is replaced. It returns the token file's path.
func AddToken(dir, name string, role api.Role, force bool) (string, error) {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return "", fmt.Errorf("certs: token name %q: want a plain file name", name)
	}
	if role == api.RoleNone {
		return "", errors.New("certs: a token needs a role: read-only, read-write or admin")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("certs: %w", err)
	}
	var doc tokensDoc
	path := TokensPath(dir)
	if b, err := os.ReadFile(path); err == nil {
		if _, err := ParseTokens(path, b); err != nil {
			return "", fmt.Errorf("certs: refusing to add to a damaged tokens file: %w", err)
		}
		json.Unmarshal(b, &doc) // parsed above
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("certs: %w", err)
	}
	kept := doc.Tokens[:0]
	for _, e := range doc.Tokens {
		if e.Name != name {
			kept = append(kept, e)
		} else if !force {
			return "", fmt.Errorf("certs: %s already has a token named %q (use --force to replace it)", path, name)
		}
	}
	tokPath := TokenPath(dir, name)
	if _, err := os.Lstat(tokPath); err == nil && !force {
		return "", fmt.Errorf("certs: %s exists (use --force to replace it)", tokPath)
	}
	tok, err := NewToken()
	if err != nil {
		return "", err
	}
	doc.Tokens = append(kept, TokenEntry{Name: name, Role: role.String(), SHA256: HashToken(tok)})
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return "", err
	}
	// The secret first: a hash without its token lets nobody in, a token
	// without its hash is refused until the file is written.
	if err := writeAtomic(tokPath, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	if err := writeAtomic(path, append(out, '\n'), 0o644); err != nil {
		return "", err
	}
	return tokPath, nil
}
