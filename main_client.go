package main

// The client-side commands of CONTRACT.md: put, append, get, delete, status
// and the client node. Exit codes: 0 ok, 1 key not found (get), 2 usage or
// bad input, 3 cluster unavailable or timed out (outcome unknown).

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"raftkv/src/api"
	"raftkv/src/bench"
	"raftkv/src/certs"
	"raftkv/src/client"
	"raftkv/src/clientnode"
	"raftkv/src/config"
	"raftkv/src/node"
)

// Exit codes (CONTRACT.md).
const (
	exitOK          = 0
	exitNotFound    = 1
	exitUsage       = 2
	exitUnavailable = 3
)

const (
	defaultCommandTimeout = 10 * time.Second
	defaultStatusTimeout  = 2 * time.Second
)

// runClientCommand runs every command but "node"; it returns the exit code
// of CONTRACT.md: 0 ok, 1 not found, 2 usage or bad input, 3 unavailable.
func runClientCommand(cmd string, args []string) int {
	if op, err := api.ParseOp(cmd); err == nil {
		return runKVCommand(op, args, os.Stdin, os.Stdout, os.Stderr)
	}
	switch cmd {
	case "txn":
		return runTxn(args, os.Stdin, os.Stdout, os.Stderr)
	case "version":
		return runVersion(args, os.Stdout, os.Stderr)
	case "status":
		return runStatus(args, os.Stdout, os.Stderr)
	case "client":
		return runClientNode(args, os.Stderr)
	case "inspect":
		return runInspect(args, os.Stdout, os.Stderr)
	case "bench":
		return bench.Main(args, os.Stdout, os.Stderr)
	case "certs":
		return runCerts(args, os.Stdout, os.Stderr)
	case "snapshot":
		return runSnapshot(args, os.Stdout, os.Stderr)
	case "transfer-leader":
		return runTransferLeader(args, os.Stdout, os.Stderr)
	case "member":
		return runMember(args, os.Stdout, os.Stderr)
	case "watch":
		return runWatch(args, os.Stdout, os.Stderr)
	case "lease":
		return runLease(args, os.Stdout, os.Stderr)
	case "lock":
		return runLock(args, os.Stdout, os.Stderr)
	case "elect":
		return runElect(args, os.Stdout, os.Stderr)
	}
	fmt.Fprintf(os.Stderr, "raftkv: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}

// clusterFlags are the flags every command against the cluster takes.
type clusterFlags struct {
	hostfile  string
	endpoints string
	timeout   time.Duration
	verbose   bool
	auth      *config.ClientAuthFlags

	// hostfileSet: --hostfile was given, and wins over $RAFTKV_ENDPOINTS.
	hostfileSet bool
}

func (f *clusterFlags) register(fs *flag.FlagSet, timeout time.Duration) {
	f.hostfile = config.DefaultHostfile
	fs.Func("hostfile", "the cluster's hostfile (default "+config.DefaultHostfile+")", func(s string) error {
		f.hostfile, f.hostfileSet = s, true
		return nil
	})
	fs.StringVar(&f.endpoints, "endpoints", "", "host:port,... of the nodes' HTTP APIs (overrides the hostfile; default $"+envEndpoints+")")
	fs.DurationVar(&f.timeout, "timeout", timeout, "give up after this long, retries included")
	fs.BoolVar(&f.verbose, "verbose", false, "log every attempt to stderr (default $"+config.EnvVerbose+")")
	f.auth = config.RegisterClientAuthFlags(fs)
}

// cluster returns the endpoints and, from a hostfile, the node names.
func (f *clusterFlags) cluster() (endpoints, names []string, err error) {
	if f.endpoints == "" && !f.hostfileSet {
		f.endpoints = endpointsFromEnv()
	}
	if f.endpoints != "" {
		eps, err := config.ParseEndpoints(f.endpoints)
		if err != nil {
			return nil, nil, fmt.Errorf("--endpoints: %w", err)
		}
		return eps, nil, nil
	}
	h, err := config.LoadHostfile(f.hostfile)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (give --hostfile or --endpoints)", err)
	}
	return h.HTTPAddrs(), h.Names(), nil
}

// logger returns a debug logger to stderr when verbose, else none.
func (f *clusterFlags) logger(stderr io.Writer) *zap.Logger {
	if v, _ := strconv.ParseBool(os.Getenv(config.EnvVerbose)); !f.verbose && !v {
		return zap.NewNop()
	}
	return newWriterLogger(stderr, zapcore.DebugLevel)
}

// dial is newClient for command cmd: a failure is told on stderr as
// "raftkv CMD: ..." and gives nil (the command exits with exitUsage).
func (f *clusterFlags) dial(cmd string, stderr io.Writer) *client.Client {
	c, err := f.newClient(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "raftkv %s: %v\n", cmd, err)
		return nil
	}
	return c
}

func (f *clusterFlags) newClient(stderr io.Writer) (*client.Client, error) {
	if f.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %v must be positive", f.timeout)
	}
	eps, names, err := f.cluster()
	if err != nil {
		return nil, err
	}
	tlsCfg, token, err := f.auth.Load(os.Getenv)
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{
		Endpoints:      eps,
		Names:          names,
		TLS:            tlsCfg,
		Token:          token,
		Logger:         f.logger(stderr),
		RequestTimeout: min(client.DefaultRequestTimeout, f.timeout),
	})
}

// newWriterLogger returns a console logger to w at level, like main's
// newLogger.
func newWriterLogger(w io.Writer, level zapcore.Level) *zap.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.ISO8601TimeEncoder
	enc.EncodeLevel = zapcore.CapitalLevelEncoder
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), level)
	return zap.New(core)
}

// newFlagSet returns a flag set that reports nothing by itself.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseInterleaved parses flags placed before, between or after the
// positional arguments; after "--" everything is positional (a value that
// starts with "-": raftkv put k -- -5).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// printUsage writes a command's usage line and flags.
func printUsage(w io.Writer, fs *flag.FlagSet, synopsis string) {
	fmt.Fprintf(w, "usage: raftkv %s\n\nflags:\n", synopsis)
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
}

// parseArgs parses a command's flags and arguments (parseInterleaved). It
// answers -h itself (the usage on stdout) and a bad command line (the
// problem and the usage on stderr): then ok is false and code is the exit
// code to return. check, if not nil, judges the arguments once the flags
// parsed.
func parseArgs(fs *flag.FlagSet, synopsis string, args []string, stdout, stderr io.Writer, check func(pos []string) error) (pos []string, code int, ok bool) {
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(stdout, fs, synopsis)
		return nil, exitOK, false
	}
	if err == nil && check != nil {
		err = check(pos)
	}
	if err != nil {
		return nil, usageError(stderr, fs, synopsis, err), false
	}
	return pos, exitOK, true
}

// usageError reports a usage problem and returns exitUsage.
func usageError(stderr io.Writer, fs *flag.FlagSet, synopsis string, err error) int {
	fmt.Fprintf(stderr, "raftkv %s: %v\n", fs.Name(), err)
	printUsage(stderr, fs, synopsis)
	return exitUsage
}

// reportError explains a failed command to a person and returns its exit
// code.
func reportError(stderr io.Writer, cmd api.Op, key string, timeout time.Duration, err error) int {
	var bad *client.BadRequestError
	switch {
	case errors.Is(err, client.ErrNotFound):
		fmt.Fprintf(stderr, "raftkv %s: key %q not found\n", cmd, key)
		return exitNotFound
	case errors.As(err, &bad):
		fmt.Fprintf(stderr, "raftkv %s: refused by the cluster: %s%s\n", cmd, bad.Msg, authHint(bad.Status))
		return exitUsage
	case errors.Is(err, client.ErrUnknownOutcome):
		fmt.Fprintf(stderr, "raftkv %s: OUTCOME UNKNOWN: no node confirmed the command within %v; it may or may not have been applied (once at most). Check with: raftkv get %s\n  cause: %v\n",
			cmd, timeout, quoteArg(key), err)
		return exitUnavailable
	case errors.Is(err, client.ErrUnavailable):
		what := "the command was not applied"
		if !cmd.IsWrite() {
			what = "nothing was read"
		}
		fmt.Fprintf(stderr, "raftkv %s: cluster unavailable: no node could serve the request within %v (no leader, no quorum, or nodes down); %s\n  cause: %v\n",
			cmd, timeout, what, err)
		return exitUnavailable
	}
	fmt.Fprintf(stderr, "raftkv %s: %v\n", cmd, err)
	return exitUnavailable
}

// quoteArg quotes s for a shell when it needs it.
func quoteArg(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`!*?[]{}()<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// runStatus prints every node's status as a table, or JSON.
func runStatus(args []string, stdout, stderr io.Writer) int {
	const synopsis = "status [flags]"
	fs := newFlagSet("status")
	var cf clusterFlags
	cf.register(fs, defaultStatusTimeout)
	asJSON := fs.Bool("json", false, "print JSON instead of a table (= -w json)")
	out := registerOutput(fs, outTable)
	_, code, ok := parseArgs(fs, synopsis, args, stdout, stderr, func(pos []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		*asJSON = *asJSON || *out == outJSON
		if len(pos) != 0 {
			return fmt.Errorf("unexpected argument %q", pos[0])
		}
		return nil
	})
	if !ok {
		return code
	}
	c := cf.dial("status", stderr)
	if c == nil {
		return exitUsage
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	nodes := c.Statuses(ctx)

	leader := -1
	reachable := 0
	for i, n := range nodes {
		if !n.Reachable {
			continue
		}
		reachable++
		if n.Role == "leader" && (leader < 0 || n.Term > nodes[leader].Term) {
			leader = i
		}
	}
	lag := func(n client.NodeStatus) (uint64, bool) {
		if leader < 0 || !n.Reachable {
			return 0, false
		}
		lc := nodes[leader].CommitIndex
		return lc - min(lc, n.AppliedIndex), true
	}

	if *asJSON {
		out := struct {
			Leader string           `json:"leader"`
			Nodes  []map[string]any `json:"nodes"`
		}{}
		if leader >= 0 {
			out.Leader = nodes[leader].Name
		}
		for _, n := range nodes {
			m := map[string]any{}
			if n.Reachable && len(n.Raw) > 0 {
				_ = json.Unmarshal(n.Raw, &m)
			} else {
				m["name"] = n.Name
				m["error"] = n.Error
			}
			m["endpoint"] = n.Endpoint
			m["reachable"] = n.Reachable
			if l, ok := lag(n); ok {
				m["lag"] = l
			}
			out.Nodes = append(out.Nodes, m)
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tENDPOINT\tROLE\tTERM\tLEADER\tCOMMIT\tAPPLIED\tLAG")
		for _, n := range nodes {
			name := n.Name
			if name == "" {
				name = "?"
			}
			if !n.Reachable {
				fmt.Fprintf(tw, "%s\t%s\tunreachable\t-\t-\t-\t-\t-\n", name, n.Endpoint)
				continue
			}
			l := "-"
			if v, ok := lag(n); ok {
				l = strconv.FormatUint(v, 10)
			}
			ld := n.Leader
			if ld == "" {
				ld = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%d\t%s\n", name, n.Endpoint, n.Role, n.Term, ld, n.CommitIndex, n.AppliedIndex, l)
		}
		tw.Flush()
		for _, n := range nodes {
			if !n.Reachable {
				fmt.Fprintf(stdout, "%s: %s\n", n.Endpoint, n.Error)
			}
		}
	}
	if reachable == 0 {
		fmt.Fprintf(stderr, "raftkv status: no node answered within %v\n", cf.timeout)
		return exitUnavailable
	}
	return exitOK
}

// runClientNode runs a client node: it replays its data file against the
// cluster, one command per interval, keeps the record, then idles until
// RAFT_DURATION ends or a signal.
func runClientNode(args []string, stderr io.Writer) int {
	cfg, err := config.LoadClientNode(args, os.Getenv, os.Hostname)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Print(err)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "raftkv client: %v\n", err)
		return exitUsage
	}
	level := zapcore.InfoLevel
	if cfg.Verbose {
		level = zapcore.DebugLevel
	}
	lg := newWriterLogger(stderr, level).With(zap.String("client", cfg.Name))
	defer lg.Sync() //nolint:errcheck // stderr

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	if err := clientnode.Run(ctx, cfg, lg); err != nil {
		lg.Error("client node failed", zap.Error(err))
		return exitUsage
	}
	return exitOK
}

// runInspect prints a node's persisted state, recovered read-only exactly
// as the node would recover it, as JSON (StateMachine.Contents included).
// It works on the folder of a node that was killed as well as stopped.
func runInspect(args []string, stdout, stderr io.Writer) int {
	const inspectUsage = "usage: raftkv inspect DIR   (a node's folder, e.g. persistence/r0)"
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprintln(stdout, inspectUsage)
		return exitOK
	}
	if len(args) != 1 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(stderr, inspectUsage)
		return exitUsage
	}
	if _, err := os.Stat(args[0]); err != nil {
		fmt.Fprintf(stderr, "raftkv inspect: %v\n", err)
		return exitUsage
	}
	in, err := node.Inspect(args[0])
	if in != nil {
		// Printed even when the folder lost records (in.Error says so): the
		// operator deciding whether to wipe it wants to see what is left.
		if werr := in.WriteJSON(stdout); werr != nil {
			fmt.Fprintf(stderr, "raftkv inspect: %v\n", werr)
			return 1
		}
	}
	if err != nil {
		// Damage is refused with the file and offset (storage.CorruptError);
		// a script sees a failure even when what is left was printed.
		fmt.Fprintf(stderr, "raftkv inspect: %v\n", err)
		return exitUsage
	}
	return exitOK
}

const certsUsage = `usage:
  raftkv certs init [--dir certs] [--days 3650] [--force]
      makes the cluster CA: DIR/ca.pem, DIR/ca-key.pem (keep ca-key.pem secret)
  raftkv certs node NAME [--dir certs] [--host H[,H...]] [--days 365] [--force]
      makes NAME's certificate, signed by DIR's CA: DIR/NAME.pem, DIR/NAME-key.pem;
      its names are NAME (how peers know the node) and every --host (how
      clients reach it: host names and IPs)
` + certsTokenUsage + `
Keys are written with mode 0600; existing files are kept unless --force.
`

// runCerts makes the cluster CA or a node's certificate (package certs).
func runCerts(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "token" {
		return runCertsToken(args[1:], stdout, stderr)
	}
	if len(args) == 0 || (args[0] != "init" && args[0] != "node") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, certsUsage)
			return exitOK
		}
		fmt.Fprint(stderr, certsUsage)
		return exitUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("certs "+sub, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	dir := fs.String("dir", "certs", "the certificates folder")
	days := fs.Int("days", 0, "days of validity (default 3650 for the CA, 365 for a node)")
	force := fs.Bool("force", false, "replace existing files")
	hosts := fs.String("host", "", "comma-separated host names and IPs the node is reached at (node only)")
	var name string
	if sub == "node" && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, certsUsage)
			return exitOK
		}
		fmt.Fprintf(stderr, "raftkv certs %s: %v\n\n%s", sub, err, certsUsage)
		return exitUsage
	}
	if sub == "node" && name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
		fs.Parse(fs.Args()[1:])
	}
	if fs.NArg() > 0 || (sub == "node" && name == "") || (sub == "init" && *hosts != "") || *days < 0 {
		fmt.Fprintf(stderr, "raftkv certs %s: bad arguments\n\n%s", sub, certsUsage)
		return exitUsage
	}
	o := certs.Options{Days: *days}
	if sub == "init" {
		if err := certs.Init(*dir, o, *force); err != nil {
			fmt.Fprintf(stderr, "raftkv certs init: %v\n", err)
			return exitUsage
		}
		fmt.Fprintf(stdout, "wrote %s and %s\n", certs.CAPath(*dir), filepath.Join(*dir, certs.CAKeyFile))
		return exitOK
	}
	var hs []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			hs = append(hs, h)
		}
	}
	if err := certs.Node(*dir, name, hs, o, *force); err != nil {
		fmt.Fprintf(stderr, "raftkv certs node: %v\n", err)
		return exitUsage
	}
	c, k := certs.NodePaths(*dir, name)
	names := []string{name}
	for _, h := range hs {
		if !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	fmt.Fprintf(stdout, "wrote %s and %s (names: %s)\n", c, k, strings.Join(names, ", "))
	return exitOK
}
