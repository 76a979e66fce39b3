// Package datafile parses a client node's data file (CONTRACT.md, "Data
// files"): one command a line,
//
//	put KEY VALUE
//	append KEY VALUE
//	get KEY
//	delete KEY
//	cas KEY N VALUE       put VALUE only if KEY's mod_index is N (0: only if absent)
//	delete-prefix PREFIX  delete every key that starts with PREFIX
//
// Blank lines and lines whose first non-blank character is '#' are skipped.
// The operation and KEY are separated by runs of spaces or tabs; VALUE is the
// rest of the line after the single space or tab that follows KEY, kept
// exactly (inner and trailing spaces included; a trailing "\r" of a CRLF
// line is not part of it). A bad line is reported with its file and line
// number and skipped; it never stops the parse.
package datafile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"raftkv/src/api"
)

// maxLineBytes bounds a line: "append " + key + " " + value + slack. The
// limits of CONTRACT.md's HTTP API (api.MaxKeyBytes, api.MaxValueBytes) are
// checked here so that a bad line is reported with its line number rather
// than as a 400 from the cluster.
const maxLineBytes = api.MaxValueBytes + api.MaxKeyBytes + 64

// Command is one command of a data file.
type Command struct {
	Line  int    // 1-based line number
	Op    api.Op // put, append, get or delete
	Key   string
	Value string // put and append only; never empty for them
	// CAS: a put only if Key's mod_index is *CAS (a "cas" line).
	CAS *uint64
	// Prefix: a delete of every key that starts with Key (a
	// "delete-prefix" line).
	Prefix bool
}

// The data-file words of the conditional put and the delete by prefix.
const (
	wordCAS          = "cas"
	wordDeletePrefix = "delete-prefix"
)

// String returns the command as a data-file line.
func (c Command) String() string {
	switch {
	case c.CAS != nil:
		return fmt.Sprintf("%s %s %d %s", wordCAS, c.Key, *c.CAS, c.Value)
	case c.Prefix:
		return wordDeletePrefix + " " + c.Key
	}
	if c.Op.HasValue() {
		return string(c.Op) + " " + c.Key + " " + c.Value
	}
	return string(c.Op) + " " + c.Key
}

// Parse reads a data file from r; name (the file's name) prefixes each
// error, as in `datafile.0.txt:12: unknown command "pur"`. It returns the
// good commands in file order and one error per bad line; a read error ends
// the parse and is the last error.
func Parse(r io.Reader, name string) ([]Command, []error) {
	var (
		cmds []Command
		errs []error
		br   = bufio.NewReader(r)
	)
	for n := 1; ; n++ {
		line, tooLong, err := readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			errs = append(errs, fmt.Errorf("%s:%d: read: %w", name, n, err))
			return cmds, errs
		}
		if errors.Is(err, io.EOF) && line == "" && !tooLong {
			return cmds, errs
		}
		if tooLong {
			errs = append(errs, fmt.Errorf("%s:%d: line longer than %d bytes", name, n, maxLineBytes))
		} else if cmd, ok, perr := parseLine(line); perr != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", name, n, perr))
		} else if ok {
			cmd.Line = n
			cmds = append(cmds, cmd)
		}
		if errors.Is(err, io.EOF) {
			return cmds, errs
		}
	}
}

// readLine returns the next line without its "\n" or "\r\n". A line longer
// than maxLineBytes is consumed and reported as tooLong. err is io.EOF with
// the last line if the file does not end in a newline.
func readLine(br *bufio.Reader) (line string, tooLong bool, err error) {
	var b strings.Builder
	for {
		chunk, isPrefix, rerr := br.ReadLine()
		if rerr != nil {
			return b.String(), tooLong, rerr
		}
		if !tooLong {
			if b.Len()+len(chunk) > maxLineBytes {
				tooLong = true
				b.Reset()
			} else {
				b.Write(chunk)
			}
		}
		if !isPrefix {
			if tooLong {
				return "", true, nil
			}
			return strings.TrimSuffix(b.String(), "\r"), false, nil
		}
	}
}

// cut splits s at its first run of blanks: the word before and the rest
// after the first blank only.
func cut(s string) (word, rest string, found bool) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// parseLine parses one line; ok is false for a line to skip.
func parseLine(line string) (cmd Command, ok bool, err error) {
	s := strings.TrimLeft(line, " \t")
	if s == "" || s[0] == '#' {
		return Command{}, false, nil
	}
	if !utf8.ValidString(s) {
		return Command{}, false, errors.New("line is not valid UTF-8")
	}
	word, rest, _ := cut(s)
	rest = strings.TrimLeft(rest, " \t")
	op := api.Op(word)
	switch op {
	case api.OpPut, api.OpAppend:
		key, value, found := cut(rest)
		if key == "" {
			return Command{}, false, fmt.Errorf("%s needs KEY and VALUE", op)
		}
		if !found || value == "" {
			return Command{}, false, fmt.Errorf("%s %s: VALUE is missing", op, key)
		}
		if len(value) > api.MaxValueBytes {
			return Command{}, false, fmt.Errorf("%s %s: VALUE is %d bytes, more than %d", op, key, len(value), api.MaxValueBytes)
		}
		cmd = Command{Op: op, Key: key, Value: value}
	case api.OpGet, api.OpDelete:
		key, extra, _ := cut(rest)
		if key == "" {
			return Command{}, false, fmt.Errorf("%s needs KEY", op)
		}
		if extra = strings.TrimRight(extra, " \t"); extra != "" {
			return Command{}, false, fmt.Errorf("%s takes only KEY, got extra %q", op, extra)
		}
		cmd = Command{Op: op, Key: key}
	case wordCAS:
		key, rest, _ := cut(rest)
		n, value, found := cut(strings.TrimLeft(rest, " \t"))
		if key == "" || n == "" {
			return Command{}, false, errors.New("cas needs KEY, N (a mod_index; 0: absent) and VALUE")
		}
		cas, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			return Command{}, false, fmt.Errorf("cas %s: N %q is not a mod_index (an integer, 0: absent)", key, n)
		}
		if !found || value == "" {
			return Command{}, false, fmt.Errorf("cas %s %s: VALUE is missing", key, n)
		}
		if len(value) > api.MaxValueBytes {
			return Command{}, false, fmt.Errorf("cas %s: VALUE is %d bytes, more than %d", key, len(value), api.MaxValueBytes)
		}
		cmd = Command{Op: api.OpPut, Key: key, Value: value, CAS: &cas}
	case wordDeletePrefix:
		key, extra, _ := cut(rest)
		if key == "" {
			return Command{}, false, errors.New("delete-prefix needs PREFIX (deleting every key is not offered)")
		}
		if extra = strings.TrimRight(extra, " \t"); extra != "" {
			return Command{}, false, fmt.Errorf("delete-prefix takes only PREFIX, got extra %q", extra)
		}
		cmd = Command{Op: api.OpDelete, Key: key, Prefix: true}
	default:
		return Command{}, false, fmt.Errorf("unknown command %q", op)
	}
	if len(cmd.Key) > api.MaxKeyBytes {
		return Command{}, false, fmt.Errorf("%s: KEY is %d bytes, more than %d", op, len(cmd.Key), api.MaxKeyBytes)
	}
	return cmd, true, nil
}
