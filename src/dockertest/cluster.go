package dockertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"raftkv/src/api"
)

// Status is a node's GET /v1/status (CONTRACT.md, "HTTP API").
type Status = api.Status

// Addrs finds a node's HTTP address ("" if it has none now).
type Addrs func(ctx context.Context, name string) (string, error)

// API talks to the nodes' HTTP APIs from the harness, with HTTPS and a
// token (auth.go).
type API struct {
	Addr Addrs
	http *clients
}

// NewAPI returns an API presenting creds whose requests time out after
// timeout.
func NewAPI(addr Addrs, creds Creds, timeout time.Duration) *API {
	return &API{Addr: addr, http: &clients{creds: creds, timeout: timeout}}
}

// Status asks one node for its status.
func (a *API) Status(ctx context.Context, name string) (Status, error) {
	var st Status
	addr, err := a.Addr(ctx, name)
	if err != nil {
		return st, err
	}
	if addr == "" {
		return st, fmt.Errorf("%s has no address (stopped or disconnected)", name)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.http.scheme()+"://"+addr+"/v1/status", nil)
	if err != nil {
		return st, err
	}
	a.http.authorize(req)
	resp, err := a.http.get(name).Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: GET /v1/status: %s", name, resp.Status)
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	return st, err
}

// Statuses asks each named node; unreachable nodes are left out.
func (a *API) Statuses(ctx context.Context, names []string) map[string]Status {
	out := map[string]Status{}
	for _, n := range names {
		if st, err := a.Status(ctx, n); err == nil {
			out[n] = st
		}
	}
	return out
}

// WaitLeader polls the named nodes until every one answers, all name the
// same leader, and that leader is among them and says it leads. It returns
// the leader's status.
func (a *API) WaitLeader(ctx context.Context, names []string) (Status, error) {
	var last map[string]Status
	var leader Status
	err := poll(ctx, 100*time.Millisecond, func() (bool, error) {
		last = a.Statuses(ctx, names)
		if len(last) != len(names) {
			return false, nil
		}
		l := ""
		for _, st := range last {
			if st.Leader == "" || (l != "" && st.Leader != l) {
				return false, nil
			}
			l = st.Leader
		}
		st, ok := last[l]
		if ok && st.Role == "leader" {
			leader = st
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		var seen []string
		for _, n := range names {
			if st, ok := last[n]; ok {
				seen = append(seen, st.String())
			} else {
				seen = append(seen, n+" unreachable")
			}
		}
		return Status{}, fmt.Errorf("no leader agreed on by %s: %w (last seen: %s)", strings.Join(names, ", "), err, strings.Join(seen, "; "))
	}
	return leader, nil
}

// WaitApplied polls until every named node has applied everything the
// leader among them has committed, and the leader's commit index did not
// move between two polls (the clients are quiet). It returns the index.
func (a *API) WaitApplied(ctx context.Context, names []string) (uint64, error) {
	var target uint64
	var last map[string]Status
	prev := uint64(0)
	err := poll(ctx, 100*time.Millisecond, func() (bool, error) {
		last = a.Statuses(ctx, names)
		if len(last) != len(names) {
			return false, nil
		}
		var commit uint64
		for _, st := range last {
			commit = max(commit, st.CommitIndex)
		}
		for _, st := range last {
			if st.AppliedIndex != commit {
				prev = commit
				return false, nil
			}
		}
		stable := commit == prev
		prev, target = commit, commit
		return stable, nil
	})
	if err != nil {
		var seen []string
		for _, st := range last {
			seen = append(seen, st.String())
		}
		return 0, fmt.Errorf("nodes %s did not converge: %w (last seen: %s)", strings.Join(names, ", "), err, strings.Join(seen, "; "))
	}
	return target, nil
}

// WriteResult is the answer to one write of the harness.
type WriteResult struct {
	Code  int // HTTP status; 0 when no answer came (timeout, refused)
	Index uint64
	Err   string
}

// Outcome maps the answer to the contract's outcomes: 200 ok; 503 and a
// refused connection: not applied; 504, a timeout or anything else: unknown.
func (r WriteResult) Outcome() api.Outcome {
	switch {
	case r.Code == http.StatusOK:
		return api.OutcomeOK
	case r.Code == http.StatusServiceUnavailable:
		return api.OutcomeError
	case r.Code == 0 && strings.Contains(r.Err, "connection refused"):
		return api.OutcomeError
	default:
		return api.OutcomeUnknown
	}
}

func (r WriteResult) String() string {
	if r.Code == 0 {
		return "no answer: " + r.Err
	}
	if r.Code == http.StatusOK {
		return fmt.Sprintf("200 OK, index %d", r.Index)
	}
	return fmt.Sprintf("%d %s: %s", r.Code, http.StatusText(r.Code), r.Err)
}

// Put writes key=value through the named node (one attempt, no retry).
func (a *API) Put(ctx context.Context, name, key, value string) WriteResult {
	addr, err := a.Addr(ctx, name)
	if err != nil || addr == "" {
		return WriteResult{Err: fmt.Sprintf("%s has no address: %v", name, err)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, a.http.scheme()+"://"+addr+"/v1/kv/"+key, strings.NewReader(value))
	if err != nil {
		return WriteResult{Err: err.Error()}
	}
	a.http.authorize(req)
	resp, err := a.http.get(name).Do(req)
	if err != nil {
		return WriteResult{Err: err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	res := WriteResult{Code: resp.StatusCode}
	var ans struct {
		api.WriteBody
		api.ErrorBody
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		res.Err = strings.TrimSpace(string(body))
	}
	res.Index, res.Err = ans.Index, ans.Error
	return res
}

// ContainerAddrs resolves a node's HTTP address from its container's
// address on the project network (inspected on every call: an address
// changes when a container restarts or is reconnected).
func ContainerAddrs(d *Docker) Addrs {
	return func(ctx context.Context, name string) (string, error) {
		st, err := d.Inspect(ctx, name)
		if err != nil {
			return "", err
		}
		if !st.Running || st.IP == "" {
			return "", nil
		}
		return net.JoinHostPort(st.IP, strconv.Itoa(HTTPPort)), nil
	}
}

// StatusInside reads a node's status from inside its own container, through
// loopback, with `raftkv status --json`: it works while the container is
// cut off the network.
func StatusInside(ctx context.Context, d *Docker, name string) (Status, error) {
	out, err := d.Exec(ctx, name, append([]string{"/raftkv", "status", "--json", "--endpoints", "127.0.0.1:" + strconv.Itoa(HTTPPort)}, insideArgs...)...)
	if err != nil {
		return Status{}, err
	}
	var v struct {
		Nodes []json.RawMessage `json:"nodes"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &v); err != nil {
		return Status{}, fmt.Errorf("raftkv status --json in %s: %w: %s", name, err, out)
	}
	if len(v.Nodes) != 1 {
		return Status{}, errors.New("raftkv status --json: want one node")
	}
	var st Status
	err = json.Unmarshal(v.Nodes[0], &st)
	return st, err
}
