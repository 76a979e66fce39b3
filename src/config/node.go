package config

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"raftkv/src/certs"
)

// Defaults, in one place.
const (
	DefaultHostfile        = "hostfile.json"
	DefaultDataDir         = "persistence"
	DefaultHeartbeat       = 100 * time.Millisecond
	DefaultElectionTimeout = time.Second
	DefaultSnapshotEvery   = 10000
	DefaultInterval        = time.Second
	// DefaultMaxClientConns: the client HTTP connections a node serves at
	// once (httpapi.DefaultMaxClientConns says why 1024).
	DefaultMaxClientConns = 1024
	// maxMaxClientConns: far above any file limit a node would be given;
	// a larger value is a typo.
	maxMaxClientConns = 1 << 20
)

// Environment variables (CONTRACT.md).
const (
	EnvName            = "RAFT_NAME"
	EnvDuration        = "RAFT_DURATION"
	EnvVerbose         = "RAFT_VERBOSE"
	EnvInterval        = "RAFT_INTERVAL"
	EnvHeartbeat       = "RAFT_HEARTBEAT"
	EnvElectionTimeout = "RAFT_ELECTION_TIMEOUT"
	EnvMaxClientConns  = "RAFT_MAX_CLIENT_CONNS"
	// Peer TLS (CONTRACT.md, "Second wave").
	EnvCACert   = "RAFTKV_CACERT"
	EnvCert     = "RAFTKV_CERT"
	EnvKey      = "RAFTKV_KEY"
	EnvInsecure = "RAFT_INSECURE"
)

// Node is the validated configuration of a Raft node.
type Node struct {
	Name     string
	ID       int       // position of Name in Hostfile.Raft
	Hostfile *Hostfile // Hostfile.Raft[ID] is this node
	// DataDir is the persistence root; the node's own folder is NodeDir().
	DataDir string
	// Duration is how long to run before a clean stop; 0: until signalled.
	Duration time.Duration
	Verbose  bool // debug-level logs
	// Invariant: 0 < Heartbeat < ElectionTimeout.
	Heartbeat, ElectionTimeout time.Duration
	SnapshotEvery              uint64 // snapshot after at least this many applied entries (see node.maybeSnapshot); > 0
	PprofAddr                  string // listen address for net/http/pprof; "" = off
	// WatchHistory and WatchHistoryBytes bound the history of changes
	// watches read (package watch): events, and bytes of keys and values;
	// 0: that package's defaults.
	WatchHistory, WatchHistoryBytes int
	// LogWindowEntries and LogWindowBytes bound the log entries the core
	// keeps in memory (raft.Config.LogWindowEntries, LogWindowBytes);
	// older ones are read back from the WAL. 0: the core's defaults.
	LogWindowEntries int
	LogWindowBytes   uint64
	// MaxClientConns bounds the client HTTP connections served at once;
	// 1 to 1<<20.
	MaxClientConns int
	// PeerTLS is the node's TLS material for peer mutual TLS (certs.LoadPeer
	// of --cacert, --cert, --key). Invariant: PeerTLS == nil iff Insecure.
	PeerTLS  *tls.Config
	Insecure bool // --insecure: plaintext peer traffic, by explicit choice
	// Auth is the HTTP API's client authentication (auth.go); with TLS
	// material the API is HTTPS with the node's certificate.
	Auth HTTPAuth
	// ListenHost is the host the node binds its ports on ("" = every
	// interface): --listen, else the hostfile's host for it when that is
	// an IP literal or localhost, else every interface (see listenHost).
	ListenHost string
}

// RaftListen is where the node listens for peers: ListenHost:raft_port.
func (n *Node) RaftListen() string {
	return net.JoinHostPort(n.ListenHost, strconv.Itoa(n.Self().RaftPort))
}

// HTTPListen is where the node serves its HTTP API: ListenHost:http_port.
func (n *Node) HTTPListen() string {
	return net.JoinHostPort(n.ListenHost, strconv.Itoa(n.Self().HTTPPort))
}

// listenHost picks the bind host for a hostfile entry: its listen field
// when given (parsed at load), else its host. An IP literal or localhost
// is bound as given: a node meant for 127.0.0.1 is not reachable from
// elsewhere. A name is not resolved and bound: in Docker it is the
// container's name, whose address changes when the container is
// disconnected and connected again (and a listener bound to the old one
// would never see the new), so a name means every interface.
func listenHost(p Peer) string {
	if p.Listen != "" {
		h, _ := parseListenHost(p.Listen) // validated by the hostfile parser
		return h
	}
	if p.Host == "localhost" || net.ParseIP(p.Host) != nil {
		return p.Host
	}
	return ""
}

// parseListenHost checks a bind host (--listen, a hostfile's listen): a
// host or IP without a port; "0.0.0.0" or "::" mean every interface ("").
func parseListenHost(h string) (string, error) {
	switch {
	case h == "":
		return "", errors.New("empty (give 0.0.0.0 for every interface)")
	case strings.ContainsAny(h, ":") && net.ParseIP(h) == nil, strings.ContainsAny(h, " /"):
		return "", errors.New("want a host or IP without a port (the ports come from the hostfile)")
	case h == "0.0.0.0" || h == "::":
		return "", nil
	}
	return h, nil
}

// Self returns this node's hostfile entry.
func (n *Node) Self() Peer { return n.Hostfile.Raft[n.ID] }

// NodeDir returns the node's persistence folder, DataDir/Name.
func (n *Node) NodeDir() string { return filepath.Join(n.DataDir, n.Name) }

// ClientNode is the validated configuration of a client node.
type ClientNode struct {
	Name     string
	Datafile string // the commands to send
	Hostfile *Hostfile
	// Endpoints are the nodes' HTTP addresses: --endpoints, or the hostfile's.
	Endpoints []string
	DataDir   string
	// Duration is how long to run before a clean stop; 0: until signalled.
	Duration time.Duration
	Interval time.Duration // pause between commands; > 0
	Verbose  bool
	// TLS (nil: plaintext HTTP) and Token ("" for none) reach the nodes'
	// HTTP API (auth.go: --cacert, --cert, --key, --token).
	TLS   *tls.Config
	Token string
}

// helpError is returned for -h and --help; it unwraps to flag.ErrHelp and
// its message is the usage text.
type helpError struct{ usage string }

func (e helpError) Error() string { return e.usage }
func (e helpError) Unwrap() error { return flag.ErrHelp }

// settings reads flags, then variables, then defaults, and collects every
// problem.
type settings struct {
	fs     *flag.FlagSet
	notes  string          // printed after the flags by --help
	set    map[string]bool // flags given on the command line
	getenv func(string) string
	errs   []error
}

func newSettings(name string) *settings {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return &settings{fs: fs}
}

// parse parses args; afterwards value() can tell given flags from defaults.
func (s *settings) parse(args []string, getenv func(string) string) error {
	s.getenv = getenv
	if s.getenv == nil {
		s.getenv = func(string) string { return "" }
	}
	if err := s.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			var b strings.Builder
			fmt.Fprintf(&b, "usage: raftkv %s [flags]\n\nflags:\n", s.fs.Name())
			s.fs.SetOutput(&b)
			s.fs.PrintDefaults()
			b.WriteString(s.notes)
			return helpError{b.String()}
		}
		return err
	}
	if s.fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (flags go before it; see --help)", s.fs.Arg(0))
	}
	s.set = map[string]bool{}
	s.fs.Visit(func(f *flag.Flag) { s.set[f.Name] = true })
	return nil
}

// value returns the raw setting and where it came from ("--flag" or
// "VARIABLE"), or ok false if neither gives one.
func (s *settings) value(flagName, env string) (val, from string, ok bool) {
	if s.set[flagName] {
		return s.fs.Lookup(flagName).Value.String(), "--" + flagName, true
	}
	if env != "" {
		if v := s.getenv(env); v != "" {
			return v, env, true
		}
	}
	return "", "", false
}

func (s *settings) failf(format string, args ...any) {
	s.errs = append(s.errs, fmt.Errorf(format, args...))
}

// duration reads a Go duration that must be > 0, and says where it came
// from: "--flag", "VARIABLE" or "default".
func (s *settings) duration(flagName, env string, def time.Duration) (time.Duration, string) {
	v, from, ok := s.value(flagName, env)
	if !ok {
		return def, "default"
	}
	d, err := time.ParseDuration(v)
	switch {
	case err != nil:
		s.failf("%s %q is not a Go duration such as 150ms or 2s", from, v)
		return def, from
	case d <= 0:
		s.failf("%s %q must be positive", from, v)
		return def, from
	}
	return d, from
}

// count reads a whole number from 1 to max, or def when neither the flag
// nor the variable gives one.
func (s *settings) count(flagName, env string, def, max int) int {
	v, from, ok := s.value(flagName, env)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		s.failf("%s %q is not a whole number from 1 to %d", from, v, max)
		return def
	}
	return n
}

// runTime reads RAFT_DURATION or --duration: whole seconds >= 0, or a Go
// duration >= 0.
func (s *settings) runTime() time.Duration {
	v, from, ok := s.value("duration", EnvDuration)
	if !ok {
		return 0
	}
	if n, err := strconv.ParseUint(v, 10, 63); err == nil {
		if n > uint64(1<<63-1)/uint64(time.Second) {
			s.failf("%s %q is too long", from, v)
			return 0
		}
		return time.Duration(n) * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		s.failf("%s %q is not a whole number of seconds >= 0 (0 = until signalled)", from, v)
		return 0
	}
	return d
}

// verbose reads --verbose or RAFT_VERBOSE.
func (s *settings) verbose() bool {
	v, from, ok := s.value("verbose", EnvVerbose)
	if !ok {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		s.failf("%s %q is not true or false", from, v)
	}
	return b
}

// name reads --name, then RAFT_NAME, then the host name.
func (s *settings) name(hostname func() (string, error)) (name, from string) {
	if v, from, ok := s.value("name", EnvName); ok {
		return v, from
	}
	if hostname == nil {
		s.failf("no node name: give --name or set %s", EnvName)
		return "", ""
	}
	h, err := hostname()
	if err != nil || h == "" {
		s.failf("no node name: give --name or set %s (the host name is unknown: %v)", EnvName, err)
		return "", ""
	}
	return h, "the host name"
}

// hostfile loads --hostfile.
func (s *settings) hostfile() *Hostfile {
	path := s.fs.Lookup("hostfile").Value.String()
	if path == "" {
		s.failf("--hostfile is empty")
		return nil
	}
	h, err := LoadHostfile(path)
	if err != nil {
		s.errs = append(s.errs, err)
		return nil
	}
	return h
}

func (s *settings) dataDir() string {
	d := s.fs.Lookup("data").Value.String()
	if d == "" {
		s.failf("--data is empty")
	}
	return d
}

// LoadNode builds a Node's configuration from args (without the command
// name), environment variables read through getenv (os.Getenv) and the host
// name (os.Hostname). The error names every problem; for -h or --help it
// unwraps to flag.ErrHelp and its message is the usage text.
func LoadNode(args []string, getenv func(string) string, hostname func() (string, error)) (*Node, error) {
	s := newSettings("node")
	fs := s.fs
	fs.String("name", "", "this node's name in the hostfile (default $"+EnvName+", then the host name)")
	fs.String("hostfile", DefaultHostfile, "the cluster's hostfile")
	fs.String("data", DefaultDataDir, "persistence root; the node keeps its files in DATA/NAME")
	fs.String("duration", "", "run this long, then stop cleanly: seconds or a Go duration; 0 = until signalled (default $"+EnvDuration+", else 0)")
	fs.Bool("verbose", false, "debug-level logs (default $"+EnvVerbose+", else false)")
	fs.String("heartbeat", "", "leader heartbeat interval (default $"+EnvHeartbeat+", else "+DefaultHeartbeat.String()+")")
	fs.String("election-timeout", "", "election timeout T, randomized in [T, 2T) (default $"+EnvElectionTimeout+", else "+DefaultElectionTimeout.String()+")")
	fs.String("snapshot-every", strconv.Itoa(DefaultSnapshotEvery), "take a snapshot after at least this many applied entries (and log bytes of at least a quarter of the last snapshot)")
	fs.String("watch-history", "", "changes kept for watches (GET /v1/watch/...?since=N older than them is 410) (default 100000)")
	fs.String("watch-history-bytes", "", "bytes of keys and values kept for watches, at most (default 67108864)")
	fs.String("log-window-entries", "0", "keep at most this many applied log entries in memory; older ones are read back from the log files for a lagging follower (0: 8192)")
	fs.String("log-window-bytes", "0", "keep at most this many bytes of applied log entries' commands in memory (0: 16 MiB)")
	fs.String("pprof", "", "serve net/http/pprof on this address, e.g. 127.0.0.1:6060 (default off)")
	fs.String("max-client-conns", "", "client HTTP connections served at once; beyond it new ones wait to be accepted (default $"+EnvMaxClientConns+", else "+strconv.Itoa(DefaultMaxClientConns)+"); keep it below the file limit")
	fs.String("cacert", "", "the cluster CA certificate, PEM (default $"+EnvCACert+")")
	fs.String("cert", "", "this node's certificate, PEM, signed by the CA and naming the node (default $"+EnvCert+")")
	fs.String("key", "", "this node's private key, PEM (default $"+EnvKey+")")
	fs.Bool("insecure", false, "plaintext peer traffic without TLS: anyone who reaches the Raft port can write to the log; for local experiments only (default $"+EnvInsecure+", else false)")
	registerAuthFlags(s)
	fs.String("listen", "", "host or IP to bind both ports on; \"0.0.0.0\" or \"::\" for every interface (default: the hostfile's host when it is an IP or localhost, else every interface)")
	s.notes = `
Peer traffic (raft_port) is mutual TLS 1.3: every node needs --cacert,
--cert and --key (or RAFTKV_CACERT, RAFTKV_CERT, RAFTKV_KEY). Make them with
  raftkv certs init --dir certs
  raftkv certs node NAME --dir certs --host HOST[,HOST...]
A node accepts a peer only with a certificate of the same CA that names the
member it claims to be. Without TLS material the node starts only with
--insecure (RAFT_INSECURE=true): plaintext, for experiments on a private
network.

With TLS material the HTTP API is HTTPS with the same certificate, and every
route but /healthz, /readyz, /metrics (unless --open-health=false) and the
dashboard's page needs a bearer token of the tokens file --tokens
(RAFTKV_TOKENS): read-only, read-write or admin. Make them with
  raftkv certs token NAME --role ROLE --dir certs

The HTTP API (the hostfile's http_port) serves at most --max-client-conns
connections at once; more wait to be accepted. A request's headers must
arrive within 5s and all of it within 30s, its reply is written within 40s,
and a keep-alive connection idle for 2m is closed. Query parameters other
than op (PUT) and consistency (GET), Client-Id headers that are not 1 to 128
bytes of UTF-8, are refused with 400. Raft traffic (raft_port) is separate.
`
	if err := s.parse(args, getenv); err != nil {
		return nil, err
	}

	n := &Node{DataDir: s.dataDir()}
	n.Duration = s.runTime()
	n.Verbose = s.verbose()
	var hbFrom, etFrom string
	before := len(s.errs)
	n.Heartbeat, hbFrom = s.duration("heartbeat", EnvHeartbeat, DefaultHeartbeat)
	n.ElectionTimeout, etFrom = s.duration("election-timeout", EnvElectionTimeout, DefaultElectionTimeout)
	if len(s.errs) == before && n.Heartbeat >= n.ElectionTimeout { // compare only values that parsed
		s.failf("heartbeat %v (%s) must be shorter than the election timeout %v (%s): followers would start elections between heartbeats",
			n.Heartbeat, hbFrom, n.ElectionTimeout, etFrom)
	}
	v := fs.Lookup("snapshot-every").Value.String()
	every, err := strconv.ParseUint(v, 10, 64)
	if err != nil || every == 0 {
		s.failf("--snapshot-every %q is not a whole number > 0", v)
	}
	n.SnapshotEvery = every
	// 0 when not given: package watch's defaults.
	n.WatchHistory = s.count("watch-history", "", 0, 1<<30)
	n.WatchHistoryBytes = s.count("watch-history-bytes", "", 0, 1<<40)
	for _, f := range []struct {
		flag string
		to   func(uint64)
	}{
		{"log-window-entries", func(v uint64) { n.LogWindowEntries = int(v) }},
		{"log-window-bytes", func(v uint64) { n.LogWindowBytes = v }},
	} {
		v := fs.Lookup(f.flag).Value.String()
		w, err := strconv.ParseUint(v, 10, 64)
		if err != nil || w > 1<<40 {
			s.failf("--%s %q is not a whole number from 0 to 2^40", f.flag, v)
			continue
		}
		f.to(w)
	}
	if v := fs.Lookup("pprof").Value.String(); v != "" {
		if err := checkListenAddr(v); err != nil {
			s.failf("--pprof %q: %v", v, err)
		}
		n.PprofAddr = v
	}

	n.MaxClientConns = s.count("max-client-conns", EnvMaxClientConns, DefaultMaxClientConns, maxMaxClientConns)
	n.PeerTLS, n.Insecure = s.peerTLS()
	n.Auth = s.httpAuth(n.Insecure)

	var nameFrom string
	n.Name, nameFrom = s.name(hostname)
	n.Hostfile = s.hostfile()
	if n.Hostfile != nil && n.Name != "" {
		id, ok := n.Hostfile.IDOf(n.Name)
		switch {
		case ok:
			n.ID = id
			n.ListenHost = listenHost(n.Hostfile.Raft[id])
		case n.Hostfile.hasClient(n.Name):
			s.failf("node name %q (from %s) is a client in %s, not a Raft node; its Raft nodes are %s",
				n.Name, nameFrom, n.Hostfile.Path, strings.Join(n.Hostfile.Names(), ", "))
		default:
			s.failf("node name %q (from %s) is not in %s; its Raft nodes are %s",
				n.Name, nameFrom, n.Hostfile.Path, strings.Join(n.Hostfile.Names(), ", "))
		}
	}
	if s.set["listen"] {
		h := fs.Lookup("listen").Value.String()
		if lh, err := parseListenHost(h); err != nil {
			s.failf("--listen %q: %v", h, err)
		} else {
			n.ListenHost = lh
		}
	}
	if len(s.errs) > 0 {
		return nil, errors.Join(s.errs...)
	}
	return n, nil
}

// peerTLS reads --cacert, --cert, --key and --insecure: either all three
// files, loaded and checked (certs.LoadPeer), or --insecure.
func (s *settings) peerTLS() (*tls.Config, bool) {
	insecure := false
	if v, from, ok := s.value("insecure", EnvInsecure); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.failf("%s %q is not true or false", from, v)
		}
		insecure = b
	}
	type file struct{ flag, env, what, path, from string }
	files := []*file{{flag: "cacert", env: EnvCACert, what: "the cluster CA certificate"},
		{flag: "cert", env: EnvCert, what: "this node's certificate"}, {flag: "key", env: EnvKey, what: "this node's key"}}
	var given, missing []string
	for _, f := range files {
		if v, from, ok := s.value(f.flag, f.env); ok {
			f.path, f.from = v, from
			given = append(given, from)
		} else {
			missing = append(missing, fmt.Sprintf("--%s (%s, %s)", f.flag, f.env, f.what))
		}
	}
	switch {
	case len(given) == 0 && insecure:
		return nil, true
	case len(given) == 0:
		s.failf("no TLS material for peer traffic: give --cacert, --cert and --key (or %s, %s, %s); make them with "+
			"`raftkv certs init --dir certs` and `raftkv certs node NAME --dir certs --host HOST`; "+
			"or run plaintext with --insecure (%s=true), for local experiments only", EnvCACert, EnvCert, EnvKey, EnvInsecure)
		return nil, false
	case insecure:
		s.failf("--insecure (or %s) and TLS material (%s) are both given: choose one", EnvInsecure, strings.Join(given, ", "))
		return nil, false
	case len(missing) > 0:
		s.failf("TLS material is incomplete: %s given, missing %s", strings.Join(given, ", "), strings.Join(missing, ", "))
		return nil, false
	}
	cfg, err := certs.LoadPeer(files[0].path, files[1].path, files[2].path)
	if err != nil {
		s.failf("peer TLS (%s): %w", strings.Join(given, ", "), err)
		return nil, false
	}
	return cfg, false
}

// LoadClientNode builds a client node's configuration from args (without
// the command name), environment variables read through getenv and the host
// name, as LoadNode does.
func LoadClientNode(args []string, getenv func(string) string, hostname func() (string, error)) (*ClientNode, error) {
	s := newSettings("client")
	fs := s.fs
	fs.String("name", "", "this client's name (default $"+EnvName+", then the host name)")
	fs.String("datafile", "", "the commands to send (default: the hostfile's entry for the name)")
	fs.String("hostfile", DefaultHostfile, "the cluster's hostfile")
	fs.String("endpoints", "", "host:port,... of the nodes' HTTP APIs (default: from the hostfile)")
	fs.String("data", DefaultDataDir, "folder for the client's records")
	fs.String("duration", "", "run this long, then stop cleanly: seconds or a Go duration; 0 = until signalled (default $"+EnvDuration+", else 0)")
	fs.String("interval", "", "pause between commands (default $"+EnvInterval+", else "+DefaultInterval.String()+")")
	fs.Bool("verbose", false, "debug-level logs (default $"+EnvVerbose+", else false)")
	auth := RegisterClientAuthFlags(fs)
	if err := s.parse(args, getenv); err != nil {
		return nil, err
	}

	c := &ClientNode{DataDir: s.dataDir()}
	var err error
	if c.TLS, c.Token, err = auth.Load(s.getenv); err != nil {
		s.errs = append(s.errs, err)
	}
	c.Duration = s.runTime()
	c.Interval, _ = s.duration("interval", EnvInterval, DefaultInterval)
	c.Verbose = s.verbose()
	var nameFrom string
	c.Name, nameFrom = s.name(hostname)
	c.Hostfile = s.hostfile()
	if v := fs.Lookup("endpoints").Value.String(); s.set["endpoints"] {
		eps, err := ParseEndpoints(v)
		if err != nil {
			s.failf("--endpoints: %w", err)
		}
		c.Endpoints = eps
	} else if c.Hostfile != nil {
		c.Endpoints = c.Hostfile.HTTPAddrs()
	}
	c.Datafile = fs.Lookup("datafile").Value.String()
	if s.set["datafile"] && c.Datafile == "" {
		s.failf("--datafile is empty")
	}
	if c.Hostfile != nil && c.Name != "" {
		entry, isClient := c.Hostfile.Client(c.Name)
		_, isNode := c.Hostfile.IDOf(c.Name)
		switch {
		case isNode:
			s.failf("client name %q (from %s) is a Raft node's name in %s; its clients are %s",
				c.Name, nameFrom, c.Hostfile.Path, c.Hostfile.clientNames())
		case isClient && !s.set["datafile"]:
			c.Datafile = entry.Datafile
		case !isClient && !s.set["datafile"]:
			s.failf("client name %q (from %s) is not in %s and no --datafile is given; its clients are %s",
				c.Name, nameFrom, c.Hostfile.Path, c.Hostfile.clientNames())
		}
	}
	if len(s.errs) > 0 {
		return nil, errors.Join(s.errs...)
	}
	return c, nil
}

func (h *Hostfile) hasClient(name string) bool {
	_, ok := h.Client(name)
	return ok
}

func (h *Hostfile) clientNames() string {
	if len(h.Clients) == 0 {
		return "none"
	}
	names := make([]string, len(h.Clients))
	for i, c := range h.Clients {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}

// ParseEndpoints parses "host:port,host:port,...": every item needs a host
// and a port in 1..65535, and appears once. Spaces around items are
// ignored. The error names every bad item.
func ParseEndpoints(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("no endpoints: want a comma-separated list of host:port")
	}
	var (
		out  []string
		errs []error
		seen = map[string]bool{}
	)
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			errs = append(errs, fmt.Errorf("endpoint %d is empty", i+1))
			continue
		}
		if strings.Contains(item, "://") {
			errs = append(errs, fmt.Errorf("endpoint %q: want host:port, without a scheme", item))
			continue
		}
		host, port, err := net.SplitHostPort(item)
		if err != nil {
			errs = append(errs, fmt.Errorf("endpoint %q is not host:port", item))
			continue
		}
		if host == "" {
			errs = append(errs, fmt.Errorf("endpoint %q has no host", item))
			continue
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			errs = append(errs, fmt.Errorf("endpoint %q: port %q is not in 1..65535", item, port))
			continue
		}
		if seen[strings.ToLower(item)] {
			errs = append(errs, fmt.Errorf("endpoint %q is given twice", item))
			continue
		}
		seen[strings.ToLower(item)] = true
		out = append(out, item)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// checkListenAddr checks a listen address: [host]:port, port 0..65535.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port or :port")
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q is not in 0..65535", port)
	}
	return nil
}
