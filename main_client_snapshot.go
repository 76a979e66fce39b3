package main

// raftkv snapshot save|status|restore (backups) and raftkv transfer-leader.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"raftkv/src/backup"
	"raftkv/src/client"
	"raftkv/src/config"
)

const snapshotUsage = `usage:
  raftkv snapshot save FILE [--hostfile H | --endpoints E] [--timeout D]
      a consistent snapshot from the leader (every write acknowledged before
      the command started is in it), with its index, term and checksum
  raftkv snapshot status FILE [--json]
      index, term, keys, size; reads the whole file and checks its checksum
  raftkv snapshot restore FILE --hostfile H --data D
      seeds D/<name> for every node of H (each folder must be absent or
      empty); then start the nodes with --hostfile H --data D
`

func runSnapshot(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, snapshotUsage)
		return exitUsage
	}
	switch args[0] {
	case "save":
		return runSnapshotSave(args[1:], stdout, stderr)
	case "status":
		return runSnapshotStatus(args[1:], stdout, stderr)
	case "restore":
		return runSnapshotRestore(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, snapshotUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "raftkv snapshot: unknown subcommand %q\n\n%s", args[0], snapshotUsage)
	return exitUsage
}

// progress reports long work on stderr, at most once a second.
type progress struct {
	w     io.Writer
	what  string
	start time.Time
	last  time.Time
	total int64 // 0: unknown
	n     int64
}

func newProgress(w io.Writer, what string, total int64) *progress {
	now := time.Now()
	return &progress{w: w, what: what, start: now, last: now, total: total}
}

func (p *progress) Write(b []byte) (int, error) {
	p.set(p.n + int64(len(b)))
	return len(b), nil
}

func (p *progress) set(n int64) {
	p.n = n
	if now := time.Now(); now.Sub(p.last) >= time.Second {
		p.last = now
		if p.total > 0 {
			fmt.Fprintf(p.w, "%s: %s of %s (%d%%)\n", p.what, mib(p.n), mib(p.total), p.n*100/p.total)
		} else {
			fmt.Fprintf(p.w, "%s: %s, %.1f MiB/s\n", p.what, mib(p.n), float64(p.n)/(1<<20)/now.Sub(p.start).Seconds())
		}
	}
}

func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

func runSnapshotSave(args []string, stdout, stderr io.Writer) int {
	const synopsis = "snapshot save [flags] FILE"
	fs := newFlagSet("snapshot save")
	var cf clusterFlags
	cf.register(fs, 10*time.Minute)
	pos, code, ok := parseArgs(fs, synopsis, args, stdout, stderr, nil)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(stderr, fs, synopsis, fmt.Errorf("want FILE, got %d arguments", len(pos)))
	}
	path := pos[0]
	if _, err := os.Lstat(path); err == nil {
		fmt.Fprintf(stderr, "raftkv snapshot save: %s exists: refusing to overwrite it\n", path)
		return exitUsage
	}
	c := cf.dial("snapshot save", stderr)
	if c == nil {
		return exitUsage
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()

	// The state goes to a temp file first: the header, which comes first
	// in the file, holds the checksum known only at the end of the stream.
	part, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-*")
	if err != nil {
		fmt.Fprintf(stderr, "raftkv snapshot save: %v\n", err)
		return exitUsage
	}
	defer func() { part.Close(); os.Remove(part.Name()) }()
	start := time.Now()
	var sum hash.Hash
	prog := newProgress(stderr, "receiving", 0)
	info, err := c.Snapshot(ctx, func(info client.SnapshotInfo) (io.Writer, error) {
		sum = backup.NewHash(info.Index, info.Term, info.Keys)
		return io.MultiWriter(part, sum, prog), nil
	})
	if err != nil {
		fmt.Fprintf(stderr, "raftkv snapshot save: %v\n", err)
		if errors.Is(err, client.ErrUnavailable) || ctx.Err() != nil {
			return exitUnavailable
		}
		return 1
	}
	if got := backup.HexSum(sum); got != info.SHA256 || prog.n != info.Size {
		fmt.Fprintf(stderr, "raftkv snapshot save: the stream was damaged in transit: received %d bytes with sha256 %s, %s sent %d bytes with sha256 %s; nothing saved\n",
			prog.n, got, info.Node, info.Size, info.SHA256)
		return 1
	}
	if _, err := part.Seek(0, io.SeekStart); err != nil {
		fmt.Fprintf(stderr, "raftkv snapshot save: %v\n", err)
		return 1
	}
	h := backup.Header{Index: info.Index, Term: info.Term, Keys: info.Keys, Size: info.Size, SHA256: info.SHA256,
		Created: start.UTC().Format(time.RFC3339), Source: info.Node}
	if err := backup.Write(path, h, part); err != nil {
		fmt.Fprintf(stderr, "raftkv snapshot save: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "saved %s: index %d, term %d, %d keys, %s, sha256 %s, from %s in %v\n",
		path, h.Index, h.Term, h.Keys, mib(h.Size), h.SHA256, h.Source, time.Since(start).Round(time.Millisecond))
	return exitOK
}

// openChecked opens a backup file and checks it whole (size, checksum).
func openChecked(path string, stderr io.Writer) (*backup.File, []byte, error) {
	f, err := backup.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	prog := newProgress(stderr, "checking "+path, f.Size)
	state, err := f.ReadState(prog.set)
	if err != nil {
		return nil, nil, err
	}
	return f, state, nil
}

func runSnapshotStatus(args []string, stdout, stderr io.Writer) int {
	const synopsis = "snapshot status [--json] FILE"
	fs := newFlagSet("snapshot status")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, code, ok := parseArgs(fs, synopsis, args, stdout, stderr, nil)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(stderr, fs, synopsis, fmt.Errorf("want FILE, got %d arguments", len(pos)))
	}
	f, _, err := openChecked(pos[0], stderr)
	if err != nil {
		fmt.Fprintf(stderr, "raftkv snapshot status: %v\n", err)
		return exitUsage
	}
	if *asJSON {
		out := struct {
			backup.Header
			Checksum string `json:"checksum"`
		}{f.Header, "ok"}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return exitOK
	}
	fmt.Fprintf(stdout, "file      %s\nindex     %d\nterm      %d\nkeys      %d\nsize      %d bytes (%s)\nsha256    %s (checksum OK)\ncreated   %s\nsource    %s\n",
		f.Path, f.Index, f.Term, f.Keys, f.Size, mib(f.Size), f.SHA256, f.Created, f.Source)
	return exitOK
}

func runSnapshotRestore(args []string, stdout, stderr io.Writer) int {
	const synopsis = "snapshot restore FILE --hostfile H --data D"
	fs := newFlagSet("snapshot restore")
	hostfile := fs.String("hostfile", config.DefaultHostfile, "the new cluster's hostfile: a folder is seeded for each of its nodes")
	data := fs.String("data", "", "the data folder the nodes will run with (their --data); required")
	pos, code, ok := parseArgs(fs, synopsis, args, stdout, stderr, nil)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(stderr, fs, synopsis, fmt.Errorf("want FILE, got %d arguments", len(pos)))
	}
	if *data == "" {
		return usageError(stderr, fs, synopsis, errors.New("--data is required"))
	}
	hf, err := config.LoadHostfile(*hostfile)
	if err != nil {
		fmt.Fprintf(stderr, "raftkv snapshot restore: %v\n", err)
		return exitUsage
	}
	names := hf.Names()
	dirs := make([]string, len(names))
	for i, n := range names {
		dirs[i] = filepath.Join(*data, n)
	}
	// Refused before the file is read: it may be large.
	if err := backup.CheckEmpty(dirs); err != nil {
		fmt.Fprintf(stderr, "raftkv snapshot restore: %v\n", err)
		return exitUsage
	}
	start := time.Now()
	f, state, err := openChecked(pos[0], stderr)
	if err == nil {
		err = backup.CheckState(f.Header, state)
	}
	if err != nil {
		fmt.Fprintf(stderr, "raftkv snapshot restore: %v\nnothing was written\n", err)
		return exitUsage
	}
	fmt.Fprintf(stdout, "%s: index %d, term %d, %d keys, %s, checksum OK\n", f.Path, f.Index, f.Term, f.Keys, mib(f.Size))
	if err := backup.Restore(*data, backup.Seed{Header: f.Header, State: state, Nodes: names}, stdout); err != nil {
		fmt.Fprintf(stderr, "raftkv snapshot restore: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "restored in %v; start every node with --hostfile %s --data %s\n", time.Since(start).Round(time.Millisecond), *hostfile, *data)
	return exitOK
}

func runTransferLeader(args []string, stdout, stderr io.Writer) int {
	const synopsis = "transfer-leader [flags] [NAME]"
	fs := newFlagSet("transfer-leader")
	var cf clusterFlags
	cf.register(fs, 15*time.Second)
	pos, code, ok := parseArgs(fs, synopsis, args, stdout, stderr, nil)
	if !ok {
		return code
	}
	if len(pos) > 1 {
		return usageError(stderr, fs, synopsis, fmt.Errorf("want at most NAME, got %d arguments", len(pos)))
	}
	to := ""
	if len(pos) == 1 {
		to = pos[0]
	}
	if cf.timeout <= 0 {
		return usageError(stderr, fs, synopsis, fmt.Errorf("--timeout %v must be positive", cf.timeout))
	}
	eps, names, err := cf.cluster()
	if err != nil {
		fmt.Fprintf(stderr, "raftkv transfer-leader: %v\n", err)
		return exitUsage
	}
	// One attempt may wait for the whole transfer (the node gives up after
	// its request timeout, 5 s): a shorter attempt would be retried, and a
	// retry that reached the new leader would move leadership again.
	tlsCfg, token, err := cf.auth.Load(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "raftkv transfer-leader: %v\n", err)
		return exitUsage
	}
	c, err := client.New(client.Config{Endpoints: eps, Names: names, Logger: cf.logger(stderr), RequestTimeout: cf.timeout,
		TLS: tlsCfg, Token: token})
	if err != nil {
		fmt.Fprintf(stderr, "raftkv transfer-leader: %v\n", err)
		return exitUsage
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	res, err := c.TransferLeader(ctx, to)
	var bad *client.BadRequestError
	switch {
	case errors.As(err, &bad):
		fmt.Fprintf(stderr, "raftkv transfer-leader: refused: %s\n", bad.Msg)
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "raftkv transfer-leader: %v\n", err)
		return exitUnavailable
	case !res.Transferred:
		fmt.Fprintf(stdout, "%s already leads\n", res.Leader)
	default:
		fmt.Fprintf(stdout, "OK (leader %s -> %s)\n", res.PreviousLeader, res.Leader)
	}
	return exitOK
}
