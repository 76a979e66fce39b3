// Package config turns hostfile.json (or hostfile.local.json), command-line
// flags and RAFT_* environment variables into one validated configuration,
// or into an error that names every problem: the file, field and value, or
// the flag or variable and its value.
//
// # Usage
//
// In main, for the node command:
//
//	cfg, err := config.LoadNode(os.Args[2:], os.Getenv, os.Hostname)
//	if errors.Is(err, flag.ErrHelp) {
//		fmt.Print(err) // the usage text
//		return 0
//	}
//	if err != nil {
//		fmt.Fprintln(os.Stderr, "raftkv node:", err)
//		return 2
//	}
//	// cfg.ID is this node's raft ID, cfg.Hostfile.Raft[cfg.ID] its own entry,
//	// cfg.NodeDir() its persistence folder.
//
// and for a client node, config.LoadClientNode the same way. Commands that
// only need addresses use LoadHostfile and ParseEndpoints.
//
// # Precedence
//
// A flag overrides its environment variable, which overrides the default.
// An empty variable counts as unset. Defaults live in one place, the
// Default* constants.
//
//	setting            flag                 variable                default
//	node name          --name               RAFT_NAME               the host name
//	hostfile           --hostfile           -                       hostfile.json
//	data folder        --data               -                       persistence
//	run time           --duration           RAFT_DURATION           0 (until signalled)
//	debug logs         --verbose            RAFT_VERBOSE            false
//	heartbeat          --heartbeat          RAFT_HEARTBEAT          100ms
//	election timeout   --election-timeout   RAFT_ELECTION_TIMEOUT   1s
//	snapshot interval  --snapshot-every     -                       10000 entries
//	pprof listener     --pprof              -                       off
//	client pause       --interval           RAFT_INTERVAL           1s
//	client data file   --datafile           -                       the hostfile's entry
//	endpoints          --endpoints          -                       the hostfile's http addresses
//
// Durations are Go durations ("150ms", "2s"); RAFT_DURATION and --duration
// also take a whole number of seconds ("30").
//
// # The hostfile
//
// The file lists the Raft nodes in order (a node's position is its ID) and
// the client nodes; see CONTRACT.md. LoadHostfile refuses unknown or
// repeated fields, missing or empty fields, values of the wrong type, ports
// outside 1..65535, names that are not plain (letters, digits, '.', '_',
// '-'; they become folder names), a name used twice (client names included),
// an address host:port used twice (raft or http), and an empty raft list.
// ClusterID depends on the raft names and their order only, so files that
// differ in addresses (a node behind a proxy or NAT) name the same cluster.
package config
