// Package bench is the load generator behind `raftkv bench`: concurrent
// clients send a mix of puts, appends and gets to the cluster's leader over
// keep-alive HTTP connections, and a report gives throughput, latency
// percentiles (an HdrHistogram per client, merged) and errors by kind.
//
// Usage from a program (main wires `raftkv bench` to Main):
//
//	code := bench.Main([]string{"--endpoints", "127.0.0.1:8000", "--clients", "64", "--duration", "5s"}, os.Stdout, os.Stderr)
//
// or, with options already parsed, Run(ctx, opts, progress) returns a Report.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"time"

	"raftkv/src/api"
	"raftkv/src/config"
)

// Exit codes of CONTRACT.md.
const (
	exitOK          = 0
	exitUsage       = 2
	exitUnavailable = 3
)

// Options describe one benchmark run.
type Options struct {
	Endpoints        []string // HTTP host:port of the nodes
	Clients          int      // concurrent clients, each with its connection and one request in flight
	Put, Append, Get float64  // operation mix, relative weights
	// List weighs listings of ListKeys keys: GET of a random prefix of
	// KeySize-2 characters with ?prefix, which holds 100 keys when every
	// key of the key space exists (the preload).
	List             float64
	KeySize, ValSize int // bytes
	Keys             int // key space: keys 0..Keys-1, zero-padded to KeySize
	Total            int // stop after this many requests (0: use Duration)
	Duration         time.Duration
	Consistency      string // "linearizable" or "stale", for gets
	Timeout          time.Duration
	Seed             int64
	JSON             bool
	Auth             Auth // HTTPS and token (auth.go)
}

// Main runs `raftkv bench` with args; it returns the process exit code.
func Main(args []string, stdout, stderr io.Writer) int {
	// Asked for, the usage goes to stdout with success, as every
	// command's --help; after a mistake, to stderr.
	usageOut := stderr
	if helpAsked(args) {
		usageOut = stdout
	}
	opts, err := parseFlags(args, usageOut)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "raftkv bench: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var progress io.Writer
	if !opts.JSON && isTerminal(stdout) {
		progress = stdout
	}
	rep, err := Run(ctx, opts, progress)
	if err != nil {
		fmt.Fprintf(stderr, "raftkv bench: %v\n", err)
		return exitUnavailable
	}
	if opts.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		rep.WriteText(stdout)
	}
	if rep.OK == 0 {
		return exitUnavailable
	}
	return exitOK
}

func parseFlags(args []string, stderr io.Writer) (Options, error) {
	fs := flag.NewFlagSet("raftkv bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	hostfile := fs.String("hostfile", config.DefaultHostfile, "the cluster's hostfile")
	endpoints := fs.String("endpoints", "", "host:port,... of the nodes' HTTP APIs (overrides the hostfile)")
	fs.IntVar(&o.Clients, "clients", 16, "concurrent clients, one request in flight each")
	fs.Float64Var(&o.Put, "put", 1, "weight of puts in the mix")
	fs.Float64Var(&o.Append, "append", 0, "weight of appends in the mix")
	fs.Float64Var(&o.Get, "get", 0, "weight of gets in the mix")
	fs.Float64Var(&o.List, "list", 0, "weight of listings of 100 keys in the mix (GET ?prefix of a key without its last two digits)")
	fs.IntVar(&o.KeySize, "key-size", 8, "key size in bytes")
	fs.IntVar(&o.ValSize, "val-size", 256, "value size in bytes")
	fs.IntVar(&o.Keys, "keys", 100000, "number of distinct keys")
	fs.IntVar(&o.Total, "total", 0, "stop after this many requests (default 10000 when --duration is not set)")
	fs.DurationVar(&o.Duration, "duration", 0, "stop after this long (e.g. 10s)")
	fs.StringVar(&o.Consistency, "consistency", "linearizable", "reads: linearizable or stale")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "timeout of one request")
	fs.Int64Var(&o.Seed, "seed", 0, "random seed for keys and the mix (0: from the clock)")
	fs.BoolVar(&o.JSON, "json", false, "print the report as JSON")
	auth := config.RegisterClientAuthFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: raftkv bench [flags]\n\nLoad generator against a running cluster: throughput and latency percentiles.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if *endpoints != "" {
		o.Endpoints, err = config.ParseEndpoints(*endpoints)
		if err != nil {
			return o, fmt.Errorf("--endpoints: %w", err)
		}
	} else {
		hf, err := config.LoadHostfile(*hostfile)
		if err != nil {
			return o, fmt.Errorf("--hostfile: %w", err)
		}
		o.Endpoints = hf.HTTPAddrs()
	}
	if o.Auth.TLS, o.Auth.Token, err = auth.Load(os.Getenv); err != nil {
		return o, err
	}
	if o.Total == 0 && o.Duration == 0 {
		o.Total = 10000
	}
	return o, o.validate()
}

func (o *Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(o.Endpoints) == 0 {
		bad("no endpoints")
	}
	if o.Clients < 1 {
		bad("--clients %d: want at least 1", o.Clients)
	}
	if o.Put < 0 || o.Append < 0 || o.Get < 0 || o.List < 0 || o.Put+o.Append+o.Get+o.List <= 0 {
		bad("--put %g --append %g --get %g --list %g: weights must be >= 0 and not all 0", o.Put, o.Append, o.Get, o.List)
	}
	if o.List > 0 && o.KeySize < 3 {
		bad("--list needs --key-size of at least 3 (a listing drops the last two digits)")
	}
	if o.KeySize < 1 || o.KeySize > 1024 {
		bad("--key-size %d: want 1..1024", o.KeySize)
	}
	if o.ValSize < 0 || o.ValSize > 1<<20 {
		bad("--val-size %d: want 0..1048576", o.ValSize)
	}
	if o.Keys < 1 {
		bad("--keys %d: want at least 1", o.Keys)
	} else if d := len(fmt.Sprint(o.Keys - 1)); o.KeySize < d && o.KeySize > 0 {
		bad("--key-size %d is too small for %d keys (needs %d digits)", o.KeySize, o.Keys, d)
	}
	if o.Total < 0 || o.Duration < 0 {
		bad("--total and --duration must not be negative")
	}
	if o.Consistency != "linearizable" && o.Consistency != "stale" {
		bad("--consistency %q: want linearizable or stale", o.Consistency)
	}
	if o.Timeout <= 0 {
		bad("--timeout %v: want a positive duration", o.Timeout)
	}
	return errors.Join(errs...)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// opKind is one kind of request.
type opKind int

const (
	opPut opKind = iota
	opAppend
	opGet
	opList
	numOps
)

var opNames = [numOps]string{string(api.OpPut), string(api.OpAppend), string(api.OpGet), "list"}

// mix picks an operation by weight.
type mix struct{ cum [numOps]float64 }

func newMix(o Options) mix {
	var m mix
	total := o.Put + o.Append + o.Get + o.List
	m.cum[opPut] = o.Put / total
	m.cum[opAppend] = (o.Put + o.Append) / total
	m.cum[opGet] = (o.Put + o.Append + o.Get) / total
	m.cum[opList] = 1
	return m
}

func (m mix) pick(r *rand.Rand) opKind {
	x := r.Float64()
	for k := range numOps {
		if x < m.cum[k] {
			return k
		}
	}
	return opGet
}

func randomValue(r *rand.Rand, n int) []byte {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[r.Intn(len(letters))]
	}
	return b
}

func keyName(n, size int) string { return string(appendKey(nil, n, size)) }

// appendKey appends key n, zero-padded to size bytes, without allocating
// (the workers build one per request).
func appendKey(b []byte, n, size int) []byte {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], int64(n), 10)
	for range size - len(d) {
		b = append(b, '0')
	}
	return append(b, d...)
}

// newTransport is one keep-alive connection pool.
func newTransport(clients int) *http.Transport {
	return &http.Transport{
		MaxIdleConns:        clients + 16,
		MaxIdleConnsPerHost: clients + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// helpAsked reports whether args ask for the usage (flag's -h, -help).
func helpAsked(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "--h", "-help", "--help":
			return true
		}
	}
	return false
}
