// Command raftkv is a fault-tolerant key-value store replicated with Raft.
// main dispatches on the first argument; see README.md for the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	_ "net/http/pprof" // served only on --pprof, off by default
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"raftkv/src/config"
	"raftkv/src/httpapi"
	"raftkv/src/memlimit"
	"raftkv/src/node"
	"raftkv/src/raft"
	"raftkv/src/storage"
	"raftkv/src/watch"
)

const usage = `usage: raftkv <command> [flags]

commands:
  node                  run one Raft node
  client                run a client node that replays its data file
  put KEY VALUE         set a key (--cas N: only if its mod_index is N; VALUE - reads stdin)
  append KEY VALUE      append to a key's value (creates it)
  get KEY               read a key (linearizable; --stale for the local copy;
                        --prefix, --range-end, --keys-only, --limit list keys)
  delete KEY            remove a key (--prefix: every key under it; --cas N)
  txn [FILE|-]          run a transaction (JSON compares, then/else operations)
  version               print the version
  status                every node's role, term and indexes (--json)
  inspect DIR           print a node's persisted state as JSON
  bench                 load generator against a running cluster
  certs init|node|token make the cluster CA, the nodes' certificates and API tokens
  snapshot save|status|restore   back the cluster up to a file, check it, seed a new cluster from it
  transfer-leader [NAME]         hand leadership to NAME (or the most caught-up follower)
  member list|add|remove|promote   the configuration, or change one member
  watch PREFIX [--since N]       print every change under PREFIX as JSON lines, resuming
                                 on another node if one fails
  lease grant TTL|keepalive ID|revoke ID|list   leases (put --lease ID attaches a key)
  lock NAME -- COMMAND           run COMMAND holding the lock NAME; it gets the fencing
                                 token (the lock key's create index) in $RAFTKV_FENCING_TOKEN
  elect NAME VALUE               campaign for NAME and hold it until interrupted

The commands against the cluster take --hostfile (default hostfile.json) and
--endpoints host:port,... (default $RAFTKV_ENDPOINTS), and, against nodes with
TLS, --cacert and --token (RAFTKV_CACERT, RAFTKV_TOKEN); put, append, get,
delete, txn, status and version take -w simple|json|table.
Exit codes: 0 ok, 1 key not found, 2 usage or bad input, 3 cluster unavailable or
timed out, 4 compare-and-swap failed (nothing applied).
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "node":
		os.Exit(runNode(args))
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		os.Exit(runClientCommand(cmd, args))
	}
}

// The node's soft memory limit (runtime/debug) follows its live heap: the
// larger of memoryFloor and what lets the heap grow memoryHeadroom, or half
// its scannable part if more, past the live heap (package memlimit says
// why). GOMEMLIMIT, when set, replaces it. 16 MiB: a collection of a
// million-key state costs a few milliseconds (its values are not scanned),
// so one every 16 MiB of allocation costs the busiest node under 3 % of
// its CPU, and the state stays within 1.5 times its raw size.
const (
	memoryFloor    = 64 << 20
	memoryHeadroom = 16 << 20
)

// newLogger builds the one logger of the process: info level, debug with
// RAFT_VERBOSE=true.
func newLogger(verbose bool) *zap.Logger {
	cfg := zap.NewProductionConfig()
	cfg.Encoding = "console"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.EncoderConfig.EncodeLevel = zapcore.CapitalLevelEncoder
	cfg.Sampling = nil
	if verbose {
		cfg.Level = zap.NewAtomicLevelAt(zap.DebugLevel)
	}
	lg, err := cfg.Build()
	if err != nil {
		panic(err)
	}
	return lg
}

// runNode runs one Raft node until it is signalled or RAFT_DURATION ends.
func runNode(args []string) int {
	cfg, err := config.LoadNode(args, os.Getenv, os.Hostname)
	if errors.Is(err, flag.ErrHelp) {
		// Asked for: the usage on stdout and success, as every other
		// command's --help.
		fmt.Print(err)
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "raftkv node: %v\n", err)
		return 2
	}
	if cfg.PprofAddr == "" {
		// Heap profile samples cost a little on every sampled allocation and
		// ~1.5 MiB of bucket tables; nobody can read them without --pprof.
		runtime.MemProfileRate = 0
	}
	lg := newLogger(cfg.Verbose)
	defer lg.Sync()
	if cfg.Insecure {
		lg.Warn("starting node with PLAINTEXT peer traffic and an OPEN HTTP API (--insecure): anyone who reaches its ports can write to the log",
			zap.String("name", cfg.Name), zap.Bool("peer_tls", false), zap.Bool("client_tls", false), zap.Bool("tokens", false),
			zap.String("raft_listen", cfg.RaftListen()), zap.String("http_listen", cfg.HTTPListen()))
	} else {
		lg.Info("starting node", zap.String("name", cfg.Name), zap.Bool("peer_tls", true), zap.Bool("client_tls", true),
			zap.Bool("tokens", true), zap.Int("token_count", cfg.Auth.Tokens.Len()), zap.Bool("client_cert_auth", cfg.Auth.ClientCertAuth),
			zap.Bool("open_health", !cfg.Auth.HealthNeedsToken),
			zap.String("raft_listen", cfg.RaftListen()), zap.String("http_listen", cfg.HTTPListen()))
	}
	peers := make([]node.Peer, len(cfg.Hostfile.Raft))
	httpPeers := make([]httpapi.Peer, len(cfg.Hostfile.Raft))
	for i, p := range cfg.Hostfile.Raft {
		peers[i] = node.Peer{Name: p.Name, RaftAddr: p.RaftAddr}
		httpPeers[i] = httpapi.Peer{Name: p.Name, HTTPAddr: p.HTTPAddr()}
	}
	rt, err := node.New(node.Config{
		ID: raft.ID(cfg.ID), Peers: peers, Bootstrap: cfg.Hostfile.BootstrapSize(), ClusterID: cfg.Hostfile.ClusterID(),
		DataDir:    filepath.Join(cfg.DataDir, cfg.Name),
		RaftListen: cfg.RaftListen(), PeerTLS: cfg.PeerTLS,
		Heartbeat: cfg.Heartbeat, ElectionTimeout: cfg.ElectionTimeout,
		SnapshotEvery:    cfg.SnapshotEvery,
		LogWindowEntries: cfg.LogWindowEntries, LogWindowBytes: cfg.LogWindowBytes,
		Logger: lg,
		Watch:  watch.Options{MaxEvents: cfg.WatchHistory, MaxBytes: cfg.WatchHistoryBytes},
	})
	if err != nil {
		// A second process on the folder is a usage error (exit 2), told
		// plainly: the data is fine, the other node keeps it.
		var locked *storage.LockedError
		if errors.As(err, &locked) {
			fmt.Fprintf(os.Stderr, "raftkv node: %s is in use by another raftkv process (%s): refusing to start a second node on the same data\n",
				locked.Dir, locked.Holder())
			return 2
		}
		lg.Error("cannot start", zap.Error(err))
		if errors.Is(err, storage.ErrCorrupt) {
			// The log line holds the message too, but escaped; an operator
			// deciding what to do with the folder reads this one.
			fmt.Fprintf(os.Stderr, "raftkv node: %v\n", err)
		}
		return 1
	}
	// Started once the state is loaded: a limit computed from the nearly
	// empty heap of a starting process would run the collector back to
	// back while a large state is decoded (a restart at 1 M keys took
	// twice as long). Read four times a second: a bulk load grows the live
	// heap by tens of MB a second, and a limit a second old left it no
	// headroom (collections back to back).
	if os.Getenv("GOMEMLIMIT") == "" {
		memlimit.Start(context.Background(), memoryFloor, memoryHeadroom, 250*time.Millisecond)
	}
	srv := httpapi.New(httpapi.Config{
		Self: raft.ID(cfg.ID), Peers: httpPeers,
		Listen:         cfg.HTTPListen(),
		MaxClientConns: cfg.MaxClientConns,
		// A leader hands over before it stops (SIGTERM): within two
		// election timeouts, or it stops anyway.
		HandoverTimeout: 2 * cfg.ElectionTimeout,
		Logger:          lg,
		Auth: httpapi.Auth{TLS: cfg.PeerTLS, Tokens: cfg.Auth.Tokens,
			ClientCertRequired: cfg.Auth.ClientCertAuth, HealthNeedsToken: cfg.Auth.HealthNeedsToken},
	}, rt)
	if cfg.PprofAddr != "" {
		go func() {
			lg.Info("pprof listening", zap.String("addr", cfg.PprofAddr))
			lg.Warn("pprof stopped", zap.Error(http.ListenAndServe(cfg.PprofAddr, nil)))
		}()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	if err := srv.Run(ctx); err != nil {
		lg.Error("node stopped with an error", zap.Error(err))
		return 1
	}
	lg.Info("stopped cleanly")
	return 0
}
