package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"raftkv/src/httpapi"
)

const memberSynopsis = "member list | member add NAME HOST RAFT_PORT HTTP_PORT [--learner] | member remove NAME | member promote NAME\n\n" + memberAddHelp

// memberAddHelp says how a node outside the hostfile is added.
const memberAddHelp = `add: NAME is a node of the hostfile (it gets its hostfile ID) or a new one
(the next free ID: beyond the hostfile's and every current member's; 'member
list' shows it). Start the new node first, on an empty folder, with a hostfile
that is the cluster's plus its own entry marked "join": true (after the nodes
added outside the hostfile before it, in ID order): it waits, and never
bootstraps. With TLS its certificate must name NAME (raftkv certs node NAME).
Every node reaches it at HOST:RAFT_PORT and HOST:HTTP_PORT from then on.`

// runMember is `raftkv member`: the configuration (GET /v1/members) and
// changes of one member (DELETE /v1/members/NAME, POST
// /v1/members/NAME/promote), asked of each endpoint in turn until one
// answers; a follower forwards a change to the leader.
func runMember(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("member")
	var cf clusterFlags
	cf.register(fs, defaultCommandTimeout)
	asJSON := fs.Bool("json", false, "list: print JSON instead of a table")
	learner := fs.Bool("learner", false, "add: the node stays a learner until promoted (default: promoted once caught up)")
	pos, code, ok := parseArgs(fs, memberSynopsis, args, stdout, stderr, nil)
	if !ok {
		return code
	}
	var method, path string
	var body []byte
	switch {
	case len(pos) == 1 && pos[0] == "list":
		method, path = http.MethodGet, "/v1/members"
	case len(pos) == 2 && pos[0] == "remove":
		method, path = http.MethodDelete, "/v1/members/"+url.PathEscape(pos[1])
	case len(pos) == 2 && pos[0] == "promote":
		method, path = http.MethodPost, "/v1/members/"+url.PathEscape(pos[1])+"/promote"
	case len(pos) == 5 && pos[0] == "add":
		rp, err1 := strconv.Atoi(pos[3])
		hp, err2 := strconv.Atoi(pos[4])
		if err1 != nil || err2 != nil {
			return usageError(stderr, fs, memberSynopsis, fmt.Errorf("RAFT_PORT %q and HTTP_PORT %q must be numbers", pos[3], pos[4]))
		}
		method, path = http.MethodPost, "/v1/members"
		body, _ = json.Marshal(httpapi.AddMemberRequest{Name: pos[1], Host: pos[2], RaftPort: rp, HTTPPort: hp, Learner: *learner})
	default:
		return usageError(stderr, fs, memberSynopsis, fmt.Errorf("want list, remove NAME or promote NAME, got %q", pos))
	}
	eps, _, err := cf.cluster()
	if err != nil {
		fmt.Fprintf(stderr, "raftkv member: %v\n", err)
		return exitUsage
	}
	if cf.timeout <= 0 {
		fmt.Fprintf(stderr, "raftkv member: --timeout %v must be positive\n", cf.timeout)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	tlsCfg, token, err := cf.auth.Load(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "raftkv member: %v\n", err)
		return exitUsage
	}
	code, answer, err := memberRequest(ctx, eps, tlsCfg, token, method, path, body)
	if err != nil {
		fmt.Fprintf(stderr, "raftkv member: %v\n", err)
		return exitUnavailable
	}
	if code != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(answer, &e)
		fmt.Fprintf(stderr, "raftkv member: %s (HTTP %d)\n", e.Error, code)
		switch code {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
			return exitUsage
		}
		return exitUnavailable // 409: another change pending or not caught up; 503, 504
	}
	if method != http.MethodGet {
		var r struct {
			Index uint64 `json:"index"`
		}
		json.Unmarshal(answer, &r)
		fmt.Fprintf(stdout, "OK (index %d)\n", r.Index)
		return exitOK
	}
	if *asJSON {
		stdout.Write(answer)
		return exitOK
	}
	var list httpapi.MembersReply
	if err := json.Unmarshal(answer, &list); err != nil {
		fmt.Fprintf(stderr, "raftkv member: bad answer: %v\n", err)
		return exitUnavailable
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tINCARNATION\tSUFFRAGE")
	for _, m := range list.Members {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", m.Name, m.ID, m.Incarnation, m.Suffrage)
	}
	tw.Flush()
	return exitOK
}

// memberRequest sends the request to each endpoint in turn, until one
// answers with something else than 503 (no leader known there), or ctx ends.
// With tlsCfg it speaks HTTPS and sends token as a bearer token.
func memberRequest(ctx context.Context, eps []string, tlsCfg *tls.Config, token, method, path string, body []byte) (int, []byte, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	hc := &http.Client{Timeout: 5 * time.Second, Transport: tr}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	var last error
	for attempt := 0; ; attempt++ {
		ep := eps[attempt%len(eps)]
		req, err := http.NewRequestWithContext(ctx, method, scheme+"://"+ep+path, bytes.NewReader(body))
		if err != nil {
			return 0, nil, err
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err == nil {
			answer, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode != http.StatusServiceUnavailable {
				return resp.StatusCode, answer, nil
			}
			err = fmt.Errorf("%s: HTTP %d", ep, resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return 0, nil, fmt.Errorf("no node answered in time: %w", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
