package dockertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"raftkv/src/certs"
)

// The compose project, its network and its containers carry a per-checkout
// prefix, $RAFT_PREFIX (the Makefile sets raftkv-<hash of the checkout's
// path>; default raftkv), so that two checkouts do not collide on one
// engine. The hostfile's names stay the nodes' names, host names and DNS
// names on the project's own network (CONTRACT.md: the hostfile's host is
// how a node is reached); only the engine-wide container name is
// prefixed: container r0 is $RAFT_PREFIX-r0 (ContainerName).
var (
	// Project is the compose project name the harness uses.
	Project = prefix()
	// NetworkName is the compose network's name (docker-compose.yaml
	// `networks.raftnet.name`).
	NetworkName = Project + "-net"
)

// ContainerName is the engine's name of the container of node or client
// name (docker-compose.yaml's container_name).
func ContainerName(name string) string { return Project + "-" + name }

func prefix() string {
	if p := os.Getenv("RAFT_PREFIX"); p != "" {
		return p
	}
	return "raftkv"
}

// Names fixed by docker-compose.yaml (and CONTRACT.md: container name =
// hostfile name).
const (
	// Image is the image docker-compose.yaml runs (built by `make image`).
	Image = "raftkv:latest"
	// HTTPPort is every node's http_port in hostfile.json.
	HTTPPort = 8000
)

// Nodes and Clients are the containers of docker-compose.yaml, in hostfile
// order.
var (
	Nodes   = []string{"r0", "r1", "r2"}
	Clients = []string{"c0", "c1"}
	// Spares are nodes of hostfile.5.json that `compose up` does not
	// start (docker-compose.yaml's profile SpareProfile): test_grow_shrink
	// starts them and adds them to the cluster (StartSpares).
	Spares = []string{"r3", "r4"}
)

// SpareProfile is the compose profile of the Spares.
const SpareProfile = "grow"

// ErrNoEngine means no Docker engine answered.
var ErrNoEngine = errors.New("dockertest: no Docker engine answers")

// Docker drives the compose project: compose for up and down, the Docker SDK
// for everything else (stop, kill, start, network disconnect and connect,
// inspect, logs, exec).
type Docker struct {
	cli *client.Client
	// Repo is the folder that holds docker-compose.yaml and persistence/.
	Repo string
	// Compose is the compose command: "docker compose" or "docker-compose".
	Compose []string
	// Env is added to compose's environment (RAFT_* variables the compose
	// file interpolates).
	Env []string
}

// Connect opens the Docker SDK client (DOCKER_HOST etc. from the
// environment, API version negotiated with the engine) and checks that an
// engine answers within a few seconds; if none does the error wraps
// ErrNoEngine.
func Connect(ctx context.Context) (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoEngine, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("%w: %v", ErrNoEngine, err)
	}
	cli.NegotiateAPIVersion(ctx)
	return cli, nil
}

// NewDocker connects to the engine and finds the compose command: $RAFT_COMPOSE
// if set (the Makefile sets it), else `docker compose`, else `docker-compose`.
func NewDocker(ctx context.Context, repo string) (*Docker, error) {
	cli, err := Connect(ctx)
	if err != nil {
		return nil, err
	}
	compose, err := FindCompose()
	if err != nil {
		cli.Close()
		return nil, err
	}
	if _, err := cli.ImageInspect(ctx, Image); err != nil {
		cli.Close()
		return nil, fmt.Errorf("image %s not found (run `make image`): %w", Image, err)
	}
	d := &Docker{cli: cli, Repo: repo, Compose: compose}
	d.Env = append(d.Env,
		fmt.Sprintf("RAFT_UID=%d", os.Getuid()), fmt.Sprintf("RAFT_GID=%d", os.Getgid()))
	return d, nil
}

// FindCompose returns the compose command to use.
func FindCompose() ([]string, error) {
	if c := strings.Fields(os.Getenv("RAFT_COMPOSE")); len(c) > 0 {
		return c, nil
	}
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, nil
	}
	if p, err := exec.LookPath("docker-compose"); err == nil {
		return []string{p}, nil
	}
	return nil, errors.New("dockertest: neither `docker compose` nor `docker-compose` is installed")
}

// Close releases the SDK client.
func (d *Docker) Close() error { return d.cli.Close() }

func (d *Docker) compose(ctx context.Context, env []string, args ...string) error {
	full := append(append([]string{}, d.Compose[1:]...), "-p", Project, "-f", filepath.Join(d.Repo, "docker-compose.yaml"))
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, d.Compose[0], full...)
	cmd.Dir = d.Repo
	cmd.Env = append(append(os.Environ(), d.Env...), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", d.Compose[0], strings.Join(full, " "), err, out)
	}
	return nil
}

// CertsDir is the git-ignored folder, under the repository, that holds the
// cluster CA and the nodes' certificates (`make certs` makes them; the
// compose file mounts it at /certs).
const CertsDir = "certs"

// EnsureCerts makes repo/certs/ca.pem, each node's certificate (Nodes and Spares: its
// name, 127.0.0.1 and localhost) and a token per role (auth.go) where
// missing, as `make certs` does.
func EnsureCerts(repo string) error {
	dir := filepath.Join(repo, CertsDir)
	if _, err := os.Stat(certs.CAPath(dir)); err != nil {
		if err := certs.Init(dir, certs.Options{}, false); err != nil {
			return err
		}
	}
	for _, n := range append(append([]string{}, Nodes...), Spares...) {
		if c, _ := certs.NodePaths(dir, n); fileExists(c) {
			continue
		}
		if err := certs.Node(dir, n, []string{n, "127.0.0.1", "localhost"}, certs.Options{}, false); err != nil {
			return err
		}
	}
	return ensureTokens(dir)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// Up starts every container of the compose file, detached, with env added
// to compose's environment (RAFT_DURATION, RAFT_INTERVAL, ...).
func (d *Docker) Up(ctx context.Context, env []string) error {
	if err := os.MkdirAll(filepath.Join(d.Repo, "persistence"), 0o755); err != nil {
		return err
	}
	if err := EnsureCerts(d.Repo); err != nil {
		return err
	}
	return d.compose(ctx, env, "up", "-d", "--no-build")
}

// Down removes the project's containers and network: `compose down`, then,
// for whatever that left (a failed compose, containers of another project
// with our names), the SDK. It returns every error it met.
func (d *Docker) Down(ctx context.Context) error {
	var errs []error
	// The profile makes compose take the Spares down too.
	if err := d.compose(ctx, nil, "--profile", SpareProfile, "down", "--remove-orphans", "-t", "5"); err != nil {
		errs = append(errs, err)
	}
	for _, name := range append(append(append([]string{}, Nodes...), Spares...), Clients...) {
		err := d.cli.ContainerRemove(ctx, ContainerName(name), container.RemoveOptions{Force: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove %s: %w", name, err))
		}
	}
	if err := d.cli.NetworkRemove(ctx, NetworkName); err != nil && !cerrdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("remove network %s: %w", NetworkName, err))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// Check rather than trust: nothing of ours may be left.
	left, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", "com.docker.compose.project="+Project))})
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("containers left after down: %d", len(left))
	}
	return nil
}

// Stop stops a container: SIGTERM (a clean shutdown), SIGKILL after grace.
func (d *Docker) Stop(ctx context.Context, name string, grace time.Duration) error {
	secs := int(grace.Seconds())
	if err := d.cli.ContainerStop(ctx, ContainerName(name), container.StopOptions{Timeout: &secs}); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

// Kill sends SIGKILL and waits for the container to be gone.
func (d *Docker) Kill(ctx context.Context, name string) error {
	if err := d.cli.ContainerKill(ctx, ContainerName(name), "SIGKILL"); err != nil {
		return fmt.Errorf("kill %s: %w", name, err)
	}
	return d.WaitExited(ctx, name)
}

// Start starts a stopped container again (same persistence folder).
func (d *Docker) Start(ctx context.Context, name string) error {
	if err := d.cli.ContainerStart(ctx, ContainerName(name), container.StartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	return nil
}

// Disconnect cuts a container off the project network (it keeps running,
// with only its loopback interface).
func (d *Docker) Disconnect(ctx context.Context, name string) error {
	if err := d.cli.NetworkDisconnect(ctx, NetworkName, ContainerName(name), false); err != nil {
		return fmt.Errorf("disconnect %s: %w", name, err)
	}
	return nil
}

// Connect puts a container back on the project network, under its
// hostfile name (it may get a new address; the nodes resolve names again
// on reconnect).
func (d *Docker) Connect(ctx context.Context, name string) error {
	err := d.cli.NetworkConnect(ctx, NetworkName, ContainerName(name), &network.EndpointSettings{Aliases: []string{name}})
	if err != nil {
		return fmt.Errorf("connect %s: %w", name, err)
	}
	return nil
}

// State is what the harness needs of a container's inspect.
type State struct {
	Running  bool
	ExitCode int
	// IP is the container's address on the project network ("" when it is
	// disconnected or stopped).
	IP string
}

// Inspect reads a container's state.
func (d *Docker) Inspect(ctx context.Context, name string) (State, error) {
	info, err := d.cli.ContainerInspect(ctx, ContainerName(name))
	if err != nil {
		return State{}, fmt.Errorf("inspect %s: %w", name, err)
	}
	var st State
	if info.State != nil {
		st.Running, st.ExitCode = info.State.Running, info.State.ExitCode
	}
	if info.NetworkSettings != nil {
		if ep := info.NetworkSettings.Networks[NetworkName]; ep != nil {
			st.IP = ep.IPAddress
		}
	}
	return st, nil
}

// WaitExited polls until the container is no longer running.
func (d *Docker) WaitExited(ctx context.Context, name string) error {
	return poll(ctx, 100*time.Millisecond, func() (bool, error) {
		st, err := d.Inspect(ctx, name)
		if err != nil {
			return false, err
		}
		return !st.Running, nil
	})
}

// Logs returns a container's stdout and stderr, interleaved.
func (d *Docker) Logs(ctx context.Context, name string) ([]byte, error) {
	rc, err := d.cli.ContainerLogs(ctx, ContainerName(name), container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := stdcopy.StdCopy(&buf, &buf, rc); err != nil {
		return buf.Bytes(), err
	}
	return buf.Bytes(), nil
}

// Exec runs a command inside a running container (the image has no shell:
// cmd[0] is a path such as /raftkv) and returns its stdout. It works on a
// container cut off the network: that is how the harness reads an isolated
// node's status (through its loopback interface).
func (d *Docker) Exec(ctx context.Context, name string, cmd ...string) ([]byte, error) {
	created, err := d.cli.ContainerExecCreate(ctx, ContainerName(name), container.ExecOptions{
		Cmd: cmd, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return nil, fmt.Errorf("exec in %s: %w", name, err)
	}
	att, err := d.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return nil, fmt.Errorf("exec attach in %s: %w", name, err)
	}
	defer att.Close()
	var stdout, stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(&stdout, &stderr, att.Reader)
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	var ins container.ExecInspect
	err = poll(ctx, 20*time.Millisecond, func() (bool, error) {
		var err error
		ins, err = d.cli.ContainerExecInspect(ctx, created.ID)
		return err == nil && !ins.Running, err
	})
	if err != nil {
		return nil, err
	}
	if ins.ExitCode != 0 {
		return stdout.Bytes(), fmt.Errorf("exec %v in %s: exit code %d: %s", cmd, name, ins.ExitCode, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// poll calls cond every period until it returns true (nil), an error, or
// ctx ends.
func poll(ctx context.Context, period time.Duration, cond func() (bool, error)) error {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
