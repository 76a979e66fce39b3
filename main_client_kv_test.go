package main

// Tests of the second wave's CLI options that need no real cluster: the
// environment, formats, stdin, usage errors and --help. The operations
// themselves run against real nodes in src/localcluster (kvapi_cli_test.go).

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"raftkv/src/client/clienttest"
)

func TestCLIEndpointsFromEnvironment(t *testing.T) {
	fake := clienttest.New(t, 3)
	env := []string{"RAFTKV_ENDPOINTS=" + strings.Join(fake.Endpoints(), ",")}
	r := run(t, env, "put", "foo", "bar")
	require.Equal(t, 0, r.code, r.stderr)
	v, _ := fake.Value("foo")
	assert.Equal(t, "bar", v)

	// An explicit --hostfile wins over the variable (flags over
	// variables): here one that does not exist.
	r = run(t, env, "get", "--hostfile", "/nonexistent/hostfile.json", "foo")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "give --hostfile or --endpoints")
	// --endpoints wins too.
	r = run(t, env, "get", "--endpoints", deadAddr(t), "--timeout", "300ms", "foo")
	assert.Equal(t, 3, r.code)
	r = run(t, []string{"RAFTKV_ENDPOINTS=nohost"}, "get", "foo")
	assert.Equal(t, 2, r.code)
	assert.Contains(t, r.stderr, "not host:port")
}

func TestCLIOutputFormats(t *testing.T) {
	fake := clienttest.New(t, 1)
	eps := fake.Endpoints()[0]
	r := run(t, nil, "put", "--endpoints", eps, "-w", "json", "k", "v")
	require.Equal(t, 0, r.code, r.stderr)
	var w struct {
		Index  uint64 `json:"index"`
		Leader string `json:"leader"`
	}
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &w))
	assert.Equal(t, uint64(1), w.Index)
	assert.Equal(t, "r0", w.Leader)

	r = run(t, nil, "get", "--endpoints", eps, "-w", "json", "k")
	require.Equal(t, 0, r.code, r.stderr)
	var g struct{ Key, Value string }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &g))
	assert.Equal(t, "k", g.Key)
	assert.Equal(t, "v", g.Value)

	r = run(t, nil, "get", "--endpoints", eps, "-w", "table", "k")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "KEY")
	assert.Contains(t, r.stdout, `"v"`)

	r = run(t, nil, "delete", "--endpoints", eps, "-w", "table", "k")
	require.Equal(t, 0, r.code, r.stderr)
	assert.Contains(t, r.stdout, "INDEX")

	r = run(t, nil, "status", "--endpoints", eps, "-w", "json")
	require.Equal(t, 0, r.code, r.stderr)
	assert.True(t, json.Valid([]byte(r.stdout)), r.stdout)

	r = run(t, nil, "version", "-w", "json")
	require.Equal(t, 0, r.code, r.stderr)
	var v struct{ Version, Go string }
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &v))
	assert.NotEmpty(t, v.Go)
	r = run(t, nil, "version")
	assert.Equal(t, 0, r.code)
	assert.True(t, strings.HasPrefix(r.stdout, "raftkv "), r.stdout)
}

func TestCLIValueFromStdin(t *testing.T) {
	fake := clienttest.New(t, 1)
	eps := fake.Endpoints()[0]
	for _, tc := range []struct{ op, stdin, want string }{
		{"put", "line one\nline two\n", "line one\nline two\n"},
		{"append", "+more", "line one\nline two\n+more"},
	} {
		cmd := exec.Command(binary(t), tc.op, "--endpoints", eps, "multi", "-")
		cmd.Env = cleanEnv()
		cmd.Stdin = strings.NewReader(tc.stdin)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		v, _ := fake.Value("multi")
		assert.Equal(t, tc.want, v)
	}
	cmd := exec.Command(binary(t), "put", "--endpoints", eps, "big", "-")
	cmd.Env = cleanEnv()
	cmd.Stdin = strings.NewReader(strings.Repeat("x", 1<<20+1))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.ExitCode())
	assert.Contains(t, string(out), "exceeds")
}

func TestCLIKVUsageErrors(t *testing.T) {
	fake := clienttest.New(t, 1)
	eps := fake.Endpoints()[0]
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad -w", []string{"get", "--endpoints", eps, "-w", "yaml", "k"}, `-w "yaml"`},
		{"bad -w on status", []string{"status", "--endpoints", eps, "-w", "xml"}, `-w "xml"`},
		{"bad --cas", []string{"put", "--endpoints", eps, "--cas", "x", "k", "v"}, "mod_index"},
		{"--cas on append", []string{"append", "--cas", "1", "k", "v"}, "not defined: -cas"},
		{"--keys-only without --prefix", []string{"get", "--endpoints", eps, "--keys-only", "k"}, "need --prefix"},
		{"--limit without --prefix", []string{"get", "--endpoints", eps, "--limit", "3", "k"}, "need --prefix"},
		{"negative --limit", []string{"get", "--endpoints", eps, "--prefix", "--limit", "-1", "k"}, "negative"},
		{"--prefix and --range-end", []string{"get", "--endpoints", eps, "--prefix", "--range-end", "z", "k"}, "exclude"},
		{"delete --prefix and --cas", []string{"delete", "--endpoints", eps, "--prefix", "--cas", "3", "k"}, "exclude"},
		{"delete of an empty prefix", []string{"delete", "--endpoints", eps, "--prefix", ""}, "KEY is empty"},
		{"txn two files", []string{"txn", "--endpoints", eps, "a", "b"}, "at most 1 argument"},
		{"txn bad JSON", []string{"txn", "--endpoints", eps, "/dev/null"}, "not valid JSON"},
		{"version argument", []string{"version", "x"}, `unexpected argument "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, nil, tc.args...)
			assert.Equal(t, 2, r.code)
			assert.Contains(t, r.stderr, tc.want)
			assert.Empty(t, r.stdout)
		})
	}
	assert.Empty(t, fake.Writes(), "no usage error reached the cluster")
}

// TestCLIEveryHelpExitsZero: every command's --help (and -h) prints its
// usage on stdout, nothing on stderr, and exits 0.
func TestCLIEveryHelpExitsZero(t *testing.T) {
	for _, cmd := range [][]string{
		{"put"}, {"append"}, {"get"}, {"delete"}, {"txn"}, {"version"}, {"status"},
		{"client"}, {"node"}, {"inspect"}, {"bench"}, {"certs"}, {"certs", "init"}, {"certs", "node"},
	} {
		for _, h := range []string{"--help", "-h"} {
			args := append(append([]string{}, cmd...), h)
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				r := run(t, nil, args...)
				assert.Equal(t, 0, r.code, r.stderr)
				assert.Contains(t, r.stdout, "usage")
				assert.Empty(t, r.stderr)
			})
		}
	}
	for _, h := range []string{"--help", "-h", "help"} {
		r := run(t, nil, h)
		assert.Equal(t, 0, r.code)
		assert.Contains(t, r.stdout, "usage: raftkv <command>")
	}
}
