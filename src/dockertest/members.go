package dockertest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"raftkv/src/api"
	"raftkv/src/httpapi"
	"raftkv/src/raft"
)

// What the membership experiments (test_replace, test_grow_shrink,
// test_rolling_restart) need beyond the first five: the members endpoints
// (an API made with the admin token, LoadRoleCreds) and compose services
// started or recreated one at a time.

// Members is a node's GET /v1/members: the configuration it holds and its
// own incarnation.
func (a *API) Members(ctx context.Context, name string) (httpapi.MembersReply, error) {
	var out httpapi.MembersReply
	res, body := a.do(ctx, name, http.MethodGet, "/v1/members", nil)
	if res.Code != http.StatusOK {
		return out, fmt.Errorf("%s: GET /v1/members: %s", name, res)
	}
	err := json.Unmarshal(body, &out)
	return out, err
}

// AddMember asks node via to add req (POST /v1/members, one attempt).
func (a *API) AddMember(ctx context.Context, via string, req httpapi.AddMemberRequest) WriteResult {
	b, _ := json.Marshal(req)
	res, _ := a.do(ctx, via, http.MethodPost, "/v1/members", b)
	return res
}

// RemoveMember asks node via to remove member name (DELETE
// /v1/members/{name}, one attempt).
func (a *API) RemoveMember(ctx context.Context, via, name string) WriteResult {
	res, _ := a.do(ctx, via, http.MethodDelete, "/v1/members/"+name, nil)
	return res
}

// do sends one request to node name and returns the answer's status, its
// index or error message, and its body.
func (a *API) do(ctx context.Context, name, method, path string, body []byte) (WriteResult, []byte) {
	addr, err := a.Addr(ctx, name)
	if err != nil || addr == "" {
		return WriteResult{Err: fmt.Sprintf("%s has no address: %v", name, err)}, nil
	}
	req, err := http.NewRequestWithContext(ctx, method, a.http.scheme()+"://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return WriteResult{Err: err.Error()}, nil
	}
	a.http.authorize(req)
	resp, err := a.http.get(name).Do(req)
	if err != nil {
		return WriteResult{Err: err.Error()}, nil
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	res := WriteResult{Code: resp.StatusCode}
	if resp.StatusCode != http.StatusOK {
		var e api.ErrorBody
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			res.Err = e.Error
		} else {
			res.Err = strings.TrimSpace(string(data))
		}
		return res, data
	}
	var w api.WriteBody
	if json.Unmarshal(data, &w) == nil {
		res.Index = w.Index
	}
	return res, data
}

// Voter reports whether m names member name as a voter, and under which
// incarnation.
func Voter(m httpapi.MembersReply, name string) (raft.Incarnation, bool) {
	for _, x := range m.Members {
		if x.Name == name {
			return x.Incarnation, x.Suffrage == raft.Voter
		}
	}
	return 0, false
}

// Describe lists m's members as name:suffrage:incarnation.
func Describe(m httpapi.MembersReply) string {
	var parts []string
	for _, x := range m.Members {
		parts = append(parts, fmt.Sprintf("%s:%s:%s", x.Name, x.Suffrage, x.Incarnation))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// UpServices creates or recreates the named compose services, and only
// them (`up -d --no-deps`), with env added to compose's environment: a
// service whose configuration changed (RAFT_HOSTFILE) is stopped (SIGTERM)
// and recreated on the same persistence folder; a Spare is started.
func (d *Docker) UpServices(ctx context.Context, env []string, names ...string) error {
	args := append([]string{"--profile", SpareProfile, "up", "-d", "--no-deps", "--no-build"}, names...)
	return d.compose(ctx, env, args...)
}
