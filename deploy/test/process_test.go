package deploytest

import (
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// process is a raftkv node started by a test.
type process struct {
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	err    error // Wait's result, once exited is closed
}

func startProcess(t *testing.T, bin string, args, env []string, log string) *process {
	t.Helper()
	f, err := os.Create(log)
	require.NoError(t, err)
	p := &process{cmd: exec.Command(bin, args...), log: log, exited: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = f, f
	require.NoError(t, p.cmd.Start())
	go func() { p.err = p.cmd.Wait(); f.Close(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p
}

// logs is the process's output so far, for failure messages.
func (p *process) logs() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// stop sends SIGTERM (what the kubelet sends) and requires a clean exit
// within 20 s.
func (p *process) stop(t *testing.T) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.exited:
		require.NoError(t, p.err, "exit after SIGTERM; log:\n%s", p.logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit within 20s of SIGTERM; log:\n%s", p.logs())
	}
}

// waitHTTP200 polls url until it answers 200, for at most 30 s, failing
// early if the process exits.
func waitHTTP200(t *testing.T, p *process, url string) {
	t.Helper()
	// As the kubelet probes: HTTPS without checking the certificate.
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(30 * time.Second)
	last := "no answer"
	for {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-p.exited:
			t.Fatalf("node exited (%v) before %s answered 200; log:\n%s", p.err, url, p.logs())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no 200 within 30s (last: %s); log:\n%s", url, last, p.logs())
		}
	}
}

// freePorts finds n free TCP ports on 127.0.0.1.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
