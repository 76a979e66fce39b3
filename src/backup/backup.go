// Package backup is the file format of `raftkv snapshot save|status|restore`
// and the seeding of a new cluster's data folders from such a file.
//
// A backup file is one JSON header line, then the state machine's snapshot
// JSON exactly as the leader's state machine encoded it (the bytes a node
// stores as "StateMachine" in its own snapshots):
//
//	{"format":"raftkv-snapshot/1","index":1234,"term":3,"keys":100000,"size":4788897,"sha256":"…","created":"…","source":"r0"}
//	{"Contents":{…},"Sessions":{…},…}
//
// The checksum covers the index, term and key count as well as the state
// (Sum), so a flipped digit in the header is caught like a flipped byte in
// the state; size is checked against the bytes that follow. The package reads
// nothing inside the state machine's JSON: what a snapshot holds is the state
// machine's business (package kv), and it may grow fields.
package backup

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// Format names the file format in the header; a file of another format is
// refused.
const Format = "raftkv-snapshot/1"

// maxHeaderBytes bounds the header line, so a file that is not a backup is
// refused without reading it whole.
const maxHeaderBytes = 64 << 10

// ErrDamaged is wrapped by every error about a backup file that is not
// whole or not what its header says.
var ErrDamaged = errors.New("backup: damaged")

// Header is a backup file's first line.
type Header struct {
	Format string `json:"format"`
	// Index and Term are those of the last log entry the state reflects.
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// Keys is the number of keys in the state (as the leader counted them).
	Keys int `json:"keys"`
	// Size is the length in bytes of the state machine's JSON after the
	// header line.
	Size int64 `json:"size"`
	// SHA256 is Sum of the index, term, keys and the state, in hex.
	SHA256 string `json:"sha256"`
	// Created (RFC 3339) and Source (the node that served it) are for people.
	Created string `json:"created"`
	Source  string `json:"source"`
}

// NewHash returns the checksum the header's SHA256 holds, primed with the
// fields it protects besides the state: write the state's bytes to it.
// The node that serves a snapshot computes the same (an HTTP trailer), so
// the file is checked end to end.
func NewHash(index, term uint64, keys int) hash.Hash {
	h := sha256.New()
	fmt.Fprintf(h, "raftkv-snapshot index=%d term=%d keys=%d\n", index, term, keys)
	return h
}

// HexSum is h's sum in lower-case hex.
func HexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func damaged(path, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrDamaged, path, fmt.Sprintf(format, args...))
}

// Write writes a backup file at path atomically (a temp file in the same
// folder, fsync, rename): the header, then the size bytes of state read
// from state. It refuses to replace an existing file.
func Write(path string, h Header, state io.Reader) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s exists: refusing to overwrite it", path)
	}
	h.Format = Format
	line, err := json.Marshal(h)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	w.Write(line)
	w.WriteByte('\n')
	n, err := io.Copy(w, state)
	if err != nil {
		return err
	}
	if n != h.Size {
		return fmt.Errorf("state is %d bytes, header says %d", n, h.Size)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil { // fails if path appeared meanwhile
		return err
	}
	ok = true
	os.Remove(tmp)
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// File is an open backup file whose header was read.
type File struct {
	Header
	Path string
	f    *os.File
	r    *bufio.Reader
}

// Open opens a backup file and reads its header. It checks the header's
// shape, not the checksum (Verify does).
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	line, err := readLine(r)
	if err != nil {
		f.Close()
		return nil, damaged(path, "header: %v", err)
	}
	bf := &File{Path: path, f: f, r: r}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&bf.Header); err != nil {
		f.Close()
		return nil, damaged(path, "header is not a raftkv snapshot header: %v", err)
	}
	var problems []string
	if bf.Format != Format {
		problems = append(problems, fmt.Sprintf("format %q, want %q", bf.Format, Format))
	}
	if bf.Index == 0 || bf.Term == 0 {
		problems = append(problems, fmt.Sprintf("index %d and term %d must be positive", bf.Index, bf.Term))
	}
	if bf.Size <= 0 || bf.Keys < 0 {
		problems = append(problems, fmt.Sprintf("size %d, keys %d", bf.Size, bf.Keys))
	}
	if len(bf.SHA256) != 2*sha256.Size {
		problems = append(problems, "sha256 "+strconv.Quote(bf.SHA256)+" is not a SHA-256 in hex")
	}
	if len(problems) > 0 {
		f.Close()
		return nil, damaged(path, "header: %v", problems)
	}
	return bf, nil
}

func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if err == nil {
			return line[:len(line)-1], nil
		}
		if err != bufio.ErrBufferFull {
			if err == io.EOF {
				return nil, errors.New("no header line (the file ends first)")
			}
			return nil, err
		}
		if len(line) > maxHeaderBytes {
			return nil, fmt.Errorf("first line longer than %d bytes", maxHeaderBytes)
		}
	}
}

// Close closes the file.
func (f *File) Close() error { return f.f.Close() }

// ReadState reads the whole state after the header and checks it against
// the header: exactly Size bytes and the checksum. progress, if not nil, is
// called with the bytes read so far now and then.
func (f *File) ReadState(progress func(done int64)) ([]byte, error) {
	if f.Size > 1<<40 {
		return nil, damaged(f.Path, "size %d is beyond any state", f.Size)
	}
	buf := make([]byte, 0, f.Size)
	h := NewHash(f.Index, f.Term, f.Keys)
	chunk := make([]byte, 1<<20)
	for {
		n, err := f.r.Read(chunk)
		if int64(len(buf))+int64(n) > f.Size {
			return nil, damaged(f.Path, "more than the %d bytes of state the header announces", f.Size)
		}
		buf = append(buf, chunk[:n]...)
		h.Write(chunk[:n])
		if progress != nil && n > 0 {
			progress(int64(len(buf)))
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if int64(len(buf)) != f.Size {
		return nil, damaged(f.Path, "truncated: %d bytes of state, the header announces %d", len(buf), f.Size)
	}
	if sum := HexSum(h); sum != f.SHA256 {
		return nil, damaged(f.Path, "checksum mismatch: the file's sha256 is %s, its header says %s", sum, f.SHA256)
	}
	return buf, nil
}
