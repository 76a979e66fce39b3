package main

// The key-value commands (put, append, get, delete, txn) with the second
// wave's options: key metadata, listings (--prefix, --keys-only, --limit,
// --range-end), compare-and-swap (--cas N), delete by prefix, transactions
// from a JSON file or stdin, values from stdin (VALUE "-"), and the output
// format -w simple|json|table of every command. Also `raftkv version`.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"text/tabwriter"

	"raftkv/src/api"
	"raftkv/src/client"
)

// exitCompareFailed: a compare-and-swap found another mod_index (409);
// nothing was applied. Scripts (a lock) retry on it.
const exitCompareFailed = 4

// envEndpoints lists the nodes' HTTP addresses, like --endpoints
// (etcdctl's ETCDCTL_ENDPOINTS).
const envEndpoints = "RAFTKV_ENDPOINTS"

// Output formats of -w.
const (
	outSimple = "simple"
	outJSON   = "json"
	outTable  = "table"
)

// registerOutput adds -w to fs.
func registerOutput(fs *flag.FlagSet, def string) *string {
	return fs.String("w", def, "output format: simple, json or table")
}

func checkOutput(w string) error {
	switch w {
	case outSimple, outJSON, outTable:
		return nil
	}
	return fmt.Errorf("-w %q: want simple, json or table", w)
}

// casFlag is --cas N: unset, or a mod_index (0: the key must be absent).
type casFlag struct {
	set bool
	n   uint64
}

func (c *casFlag) String() string {
	if !c.set {
		return ""
	}
	return strconv.FormatUint(c.n, 10)
}

func (c *casFlag) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return errors.New("want the key's mod_index, an integer (0: the key must be absent)")
	}
	c.set, c.n = true, n
	return nil
}

// kvFlags are the options of put, append, get and delete.
type kvFlags struct {
	stale, prefix, keysOnly bool
	limit                   int
	rangeEnd                string
	cas                     casFlag
	lease                   uint64
	out                     *string
}

func (k *kvFlags) register(fs *flag.FlagSet, op api.Op) {
	k.out = registerOutput(fs, outSimple)
	switch op {
	case api.OpGet:
		fs.BoolVar(&k.stale, "stale", false, "read the answering node's local copy: fast, needs no quorum, may miss recent writes")
		fs.BoolVar(&k.prefix, "prefix", false, "list every key that starts with KEY (\"\" for all keys), in key order")
		fs.BoolVar(&k.keysOnly, "keys-only", false, "with --prefix or --range-end: print the keys only")
		fs.IntVar(&k.limit, "limit", 0, "with --prefix or --range-end: at most this many keys (0: all)")
		fs.StringVar(&k.rangeEnd, "range-end", "", "list the keys in [KEY, END)")
	case api.OpPut:
		fs.Var(&k.cas, "cas", "write only if the key's mod_index is N (0: only if the key is absent); else exit 4")
		fs.Uint64Var(&k.lease, "lease", 0, "attach the key to lease ID (raftkv lease grant): deleted when the lease ends")
	case api.OpDelete:
		fs.BoolVar(&k.prefix, "prefix", false, "delete every key that starts with KEY, in one entry")
		fs.Var(&k.cas, "cas", "delete only if the key's mod_index is N; else exit 4")
	}
}

// readValue returns VALUE, or stdin for "-" (at most 1 MiB).
func readValue(arg string, stdin io.Reader) (string, error) {
	if arg != "-" {
		return arg, nil
	}
	b, err := io.ReadAll(io.LimitReader(stdin, api.MaxValueBytes+1))
	if err != nil {
		return "", fmt.Errorf("read VALUE from stdin: %w", err)
	}
	if len(b) > api.MaxValueBytes {
		return "", fmt.Errorf("VALUE from stdin exceeds %d bytes", api.MaxValueBytes)
	}
	return string(b), nil
}

// runKVCommand runs put, append, get or delete.
func runKVCommand(op api.Op, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := op.String()
	synopsis := cmd + " [flags] KEY"
	if op.HasValue() {
		synopsis += " VALUE   (VALUE - reads stdin)"
	}
	fs := newFlagSet(cmd)
	var cf clusterFlags
	cf.register(fs, defaultCommandTimeout)
	var kf kvFlags
	kf.register(fs, op)
	pos, code, ok := parseArgs(fs, synopsis, args, stdout, stderr, nil)
	if !ok {
		return code
	}
	if err := checkOutput(*kf.out); err != nil {
		return usageError(stderr, fs, synopsis, err)
	}
	want := 1
	if op.HasValue() {
		want = 2
	}
	if len(pos) != want {
		hint := ""
		if want == 2 && len(pos) > 2 {
			hint = " (quote a VALUE that holds spaces)"
		}
		return usageError(stderr, fs, synopsis, fmt.Errorf("want %d arguments, got %d%s", want, len(pos), hint))
	}
	key := pos[0]
	listing := kf.prefix || kf.rangeEnd != ""
	switch {
	case key == "" && !(op == api.OpGet && kf.prefix):
		return usageError(stderr, fs, synopsis, errors.New("KEY is empty"))
	case kf.prefix && kf.rangeEnd != "":
		return usageError(stderr, fs, synopsis, errors.New("--prefix and --range-end exclude each other"))
	case (kf.keysOnly || kf.limit != 0) && !listing:
		return usageError(stderr, fs, synopsis, errors.New("--keys-only and --limit need --prefix or --range-end"))
	case kf.limit < 0:
		return usageError(stderr, fs, synopsis, errors.New("--limit must not be negative"))
	case kf.prefix && kf.cas.set:
		return usageError(stderr, fs, synopsis, errors.New("--prefix and --cas exclude each other"))
	}
	var value string
	var err error
	if op.HasValue() {
		if value, err = readValue(pos[1], stdin); err != nil {
			return usageError(stderr, fs, synopsis, err)
		}
	}
	c := cf.dial(cmd, stderr)
	if c == nil {
		return exitUsage
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	p := printer{w: stdout, format: *kf.out}

	switch {
	case op == api.OpGet && listing:
		return runList(ctx, c, key, kf, p, stderr, cf)
	case op == api.OpGet:
		var opts []client.GetOption
		if kf.stale {
			opts = append(opts, client.WithStale())
		}
		e, _, err := c.GetEntry(ctx, key, opts...)
		if err != nil {
			return hostfileHint(reportError(stderr, op, key, cf.timeout, err), cf, stderr)
		}
		p.entries([]api.ValueBody{e}, false)
		return exitOK
	case op == api.OpDelete && kf.prefix:
		n, res, err := c.DeletePrefix(ctx, key)
		if err != nil {
			return reportError(stderr, op, key, cf.timeout, err)
		}
		p.write(res, &n)
		return exitOK
	}
	var res client.Result
	switch {
	case kf.lease != 0 && op == api.OpPut:
		o := client.PutOptions{Lease: kf.lease}
		if kf.cas.set {
			o.CAS = &kf.cas.n
		}
		res, err = c.PutWith(ctx, key, value, o)
		if errors.Is(err, client.ErrLeaseNotFound) {
			return leaseError(stderr, kf.lease, cf.timeout, err)
		}
	case kf.cas.set && op == api.OpPut:
		res, err = c.PutCAS(ctx, key, value, kf.cas.n)
	case kf.cas.set:
		res, err = c.DeleteCAS(ctx, key, kf.cas.n)
	default:
		_, res, err = c.Do(ctx, op, key, value)
	}
	var ce *client.CASError
	if errors.As(err, &ce) {
		fmt.Fprintf(stderr, "raftkv %s: %s\n", cmd, ce.Current.Error)
		if p.format == outJSON {
			p.json(ce.Current)
		}
		return exitCompareFailed
	}
	if err != nil {
		return hostfileHint(reportError(stderr, op, key, cf.timeout, err), cf, stderr)
	}
	p.write(res, nil)
	return exitOK
}

// listPage is how many keys the CLI asks for at a time: well inside the
// server's reply bound for small values, and a page of large values is
// refused (413) rather than truncated, so the CLI then halves it.
const listPage = 1000

// runList pages through a listing, printing up to --limit keys.
func runList(ctx context.Context, c *client.Client, key string, kf kvFlags, p printer, stderr io.Writer, cf clusterFlags) int {
	o := client.ListOptions{RangeEnd: kf.rangeEnd, KeysOnly: kf.keysOnly, Stale: kf.stale}
	var all api.ListBody
	page := listPage
	for {
		o.Limit = page
		if kf.limit > 0 {
			o.Limit = min(page, kf.limit-all.Count)
		}
		b, _, err := c.List(ctx, key, o)
		var bad *client.BadRequestError
		if errors.As(err, &bad) && bad.Status == 413 && o.Limit > 1 {
			page = max(1, o.Limit/2)
			continue
		}
		if err != nil {
			return hostfileHint(reportError(stderr, api.OpGet, key, cf.timeout, err), cf, stderr)
		}
		all.KVs, all.Keys = append(all.KVs, b.KVs...), append(all.Keys, b.Keys...)
		all.Count += b.Count
		all.More, all.Continue = b.More, b.Continue
		if !b.More || (kf.limit > 0 && all.Count >= kf.limit) {
			break
		}
		o.Continue = b.Continue
	}
	switch {
	case p.format == outJSON:
		p.json(all)
	case kf.keysOnly:
		p.keys(all.Keys)
	default:
		p.entries(all.KVs, true)
	}
	return exitOK
}

// printer prints results in one of the -w formats.
type printer struct {
	w      io.Writer
	format string
}

func (p printer) json(v any) {
	b, _ := json.MarshalIndent(v, "", "  ")
	fmt.Fprintf(p.w, "%s\n", b)
}

// write prints a write's acknowledgement; deleted is set for a delete by
// prefix.
func (p printer) write(res client.Result, deleted *int) {
	leader := res.Leader
	if leader == "" {
		leader = res.Node
	}
	if p.format == outJSON {
		v := map[string]any{"index": res.Index, "leader": leader}
		if deleted != nil {
			v["deleted"] = *deleted
		}
		p.json(v)
		return
	}
	if p.format == outTable {
		tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "INDEX\tLEADER\tDELETED")
		d := "-"
		if deleted != nil {
			d = strconv.Itoa(*deleted)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", res.Index, dash(leader), d)
		tw.Flush()
		return
	}
	extra := ""
	if deleted != nil {
		extra = fmt.Sprintf(", %d keys deleted", *deleted)
	}
	if leader == "" {
		fmt.Fprintf(p.w, "OK (index %d%s)\n", res.Index, extra)
	} else {
		fmt.Fprintf(p.w, "OK (leader %s, index %d%s)\n", leader, res.Index, extra)
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// entries prints keys with values: simple prints the value alone for one
// key (CONTRACT.md), and key then value lines for a listing (etcdctl's
// shape).
func (p printer) entries(es []api.ValueBody, listing bool) {
	switch p.format {
	case outJSON:
		p.json(es[0])
	case outTable:
		tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "KEY\tVALUE\tCREATE_INDEX\tMOD_INDEX\tVERSION")
		for _, e := range es {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", e.Key, strconv.Quote(e.Value), e.CreateIndex, e.ModIndex, e.Version)
		}
		tw.Flush()
	default:
		for _, e := range es {
			if listing {
				fmt.Fprintln(p.w, e.Key)
			}
			fmt.Fprintln(p.w, e.Value)
		}
	}
}

func (p printer) keys(ks []string) {
	if p.format == outTable {
		fmt.Fprintln(p.w, "KEY")
	}
	for _, k := range ks {
		fmt.Fprintln(p.w, k)
	}
}

const txnSynopsis = `txn [flags] [FILE|-]

Runs a transaction: a JSON object from FILE, or stdin (- or no FILE):
  {"compare": [{"key": "k", "target": "value|mod_index|create_index|version|exists",
                "op": "==|!=|<|>", "value": "v" | "number": N | "exists": true}],
   "then": [{"op": "put|append|delete|get", "key": "k", "value": "v"}],
   "else": [...]}
If every compare holds, "then" runs, else "else"; either way at one log
index, all or nothing. Prints SUCCESS or FAILURE (the branch), then a line
per operation. Exit 0 either way.`

// runTxn runs POST /v1/txn with a body from a file or stdin.
func runTxn(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("txn")
	var cf clusterFlags
	cf.register(fs, defaultCommandTimeout)
	out := registerOutput(fs, outSimple)
	pos, code, ok := parseArgs(fs, txnSynopsis, args, stdout, stderr, func(pos []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		if len(pos) > 1 {
			return fmt.Errorf("want at most 1 argument, got %d", len(pos))
		}
		return nil
	})
	if !ok {
		return code
	}
	in := stdin
	if len(pos) == 1 && pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			fmt.Fprintf(stderr, "raftkv txn: %v\n", err)
			return exitUsage
		}
		defer f.Close()
		in = f
	}
	data, err := io.ReadAll(io.LimitReader(in, api.MaxTxnBytes+1))
	if err != nil {
		fmt.Fprintf(stderr, "raftkv txn: read the transaction: %v\n", err)
		return exitUsage
	}
	var t api.TxnRequest
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		fmt.Fprintf(stderr, "raftkv txn: the transaction is not valid JSON of the documented shape: %v\n", err)
		return exitUsage
	}
	c := cf.dial("txn", stderr)
	if c == nil {
		return exitUsage
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	tb, _, err := c.Txn(ctx, t)
	if err != nil {
		return hostfileHint(reportError(stderr, "txn", "", cf.timeout, err), cf, stderr)
	}
	p := printer{w: stdout, format: *out}
	switch p.format {
	case outJSON:
		p.json(tb)
		return exitOK
	case outTable:
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "BRANCH\tINDEX\n%s\t%d\n\nOP\tKEY\tFOUND\tVALUE\tMOD_INDEX\n", branch(tb.Succeeded), tb.Index)
		for _, r := range tb.Results {
			mod := "-"
			if r.KeyMeta != nil {
				mod = strconv.FormatUint(r.ModIndex, 10)
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", r.Op, r.Key, r.Found, strconv.Quote(r.Value), mod)
		}
		tw.Flush()
		return exitOK
	}
	fmt.Fprintf(stdout, "%s (index %d)\n", branch(tb.Succeeded), tb.Index)
	for _, r := range tb.Results {
		switch {
		case r.Op == api.OpGet && r.Found:
			fmt.Fprintf(stdout, "%s\n%s\n", r.Key, r.Value)
		case r.Op == api.OpGet:
			fmt.Fprintf(stdout, "%s (not found)\n", r.Key)
		default:
			fmt.Fprintf(stdout, "OK %s %s\n", r.Op, r.Key)
		}
	}
	return exitOK
}

func branch(succeeded bool) string {
	if succeeded {
		return "SUCCESS"
	}
	return "FAILURE"
}

// version is the release; `go build -ldflags "-X main.version=..."` sets it.
var version = "dev"

// runVersion prints the version, the Go version and the VCS revision the
// binary was built from.
func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version")
	out := registerOutput(fs, outSimple)
	_, code, ok := parseArgs(fs, "version [-w simple|json|table]", args, stdout, stderr, func(pos []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		if len(pos) > 0 {
			return fmt.Errorf("unexpected argument %q", pos[0])
		}
		return nil
	})
	if !ok {
		return code
	}
	v := struct {
		Version  string `json:"version"`
		Go       string `json:"go"`
		Revision string `json:"revision,omitempty"`
		Modified bool   `json:"modified,omitempty"`
	}{Version: version, Go: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				v.Revision = s.Value
			case "vcs.modified":
				v.Modified = s.Value == "true"
			}
		}
	}
	switch *out {
	case outJSON:
		printer{w: stdout}.json(v)
	case outTable:
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "VERSION\tGO\tREVISION\n%s\t%s\t%s\n", v.Version, v.Go, dash(v.Revision))
		tw.Flush()
	default:
		rev := ""
		if v.Revision != "" {
			rev = ", revision " + v.Revision
			if v.Modified {
				rev += " (modified)"
			}
		}
		fmt.Fprintf(stdout, "raftkv %s (%s%s)\n", v.Version, v.Go, rev)
	}
	return exitOK
}

// hostfileHint follows a failure to reach the cluster through the default
// hostfile: its hosts are the Docker containers' names, which do not
// resolve outside Docker, the first trap of a local cluster.
func hostfileHint(code int, cf clusterFlags, stderr io.Writer) int {
	if code == exitUnavailable && cf.endpoints == "" && !cf.hostfileSet {
		fmt.Fprintf(stderr, "hint: %s names the Docker cluster's nodes; for the local cluster give --hostfile hostfile.local.json or export %s=127.0.0.1:8000,127.0.0.1:8001,127.0.0.1:8002\n",
			cf.hostfile, envEndpoints)
	}
	return code
}

// endpointsFromEnv is RAFTKV_ENDPOINTS, for clusterFlags.cluster.
func endpointsFromEnv() string { return strings.TrimSpace(os.Getenv(envEndpoints)) }
