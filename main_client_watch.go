package main

// The coordination commands of issue 16: watch, lease, lock and elect.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"raftkv/src/api"
	"raftkv/src/client"
)

const (
	watchSynopsis = "watch PREFIX [--since N] [--count N]   (an empty PREFIX \"\" watches every key)"
	leaseSynopsis = "lease grant TTL | lease keepalive ID [--once] | lease revoke ID | lease list"
	lockSynopsis  = "lock NAME [--ttl 10s] -- COMMAND [ARGS...]"
	electSynopsis = "elect NAME VALUE [--ttl 10s]"
	// defaultLockTTL: a holder that dies frees the lock after this long.
	defaultLockTTL = 10 * time.Second
)

// Environment variables a command run under `raftkv lock` gets.
const (
	envFencingToken = "RAFTKV_FENCING_TOKEN" // the lock key's create index: strictly increasing per lock
	envLockKey      = "RAFTKV_LOCK_KEY"
	envLockLease    = "RAFTKV_LOCK_LEASE"
)

// runWatch prints every change under a prefix as a JSON line, from --since
// (default: now), resuming on another node when one fails.
func runWatch(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("watch")
	var cf clusterFlags
	cf.register(fs, defaultCommandTimeout)
	since := fs.Int64("since", -1, "stream the changes above this log index (default: from now)")
	count := fs.Int("count", 0, "exit after this many changes (0: run until interrupted)")
	pos, code, ok := parseArgs(fs, watchSynopsis, args, stdout, stderr, func(pos []string) error {
		if len(pos) != 1 {
			return fmt.Errorf("want 1 argument (the prefix), got %d", len(pos))
		}
		if *count < 0 {
			return fmt.Errorf("--count %d must not be negative", *count)
		}
		return nil
	})
	if !ok {
		return code
	}
	c := cf.dial("watch", stderr)
	if c == nil {
		return exitUsage
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	from := uint64(*since)
	if *since < 0 {
		// From now: the index of a linearizable read.
		rctx, cancel := context.WithTimeout(ctx, cf.timeout)
		_, res, err := c.List(rctx, pos[0], client.ListOptions{Limit: 1, KeysOnly: true})
		cancel()
		if err != nil {
			return reportError(stderr, "watch", pos[0], cf.timeout, err)
		}
		from = res.RaftIndex
	}
	n := 0
	enc := json.NewEncoder(stdout)
	errDone := errors.New("done")
	err := c.Watch(ctx, pos[0], from, func(e api.WatchEvent) error {
		if err := enc.Encode(e); err != nil {
			return err
		}
		n++
		if *count > 0 && n >= *count {
			return errDone
		}
		return nil
	})
	var ce *client.CompactedError
	switch {
	case errors.Is(err, errDone), ctx.Err() != nil:
		return exitOK
	case errors.As(err, &ce):
		fmt.Fprintf(stderr, "raftkv watch: %v (read the keys afresh, then watch with --since the index of that read)\n", err)
		return exitNotFound
	}
	return reportError(stderr, "watch", pos[0], cf.timeout, err)
}

// runLease grants, keeps alive, revokes and lists leases.
func runLease(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("lease")
	var cf clusterFlags
	cf.register(fs, defaultCommandTimeout)
	once := fs.Bool("once", false, "keepalive: renew once and exit (default: every TTL/3 until interrupted)")
	out := registerOutput(fs, outSimple)
	want := map[string]int{"grant": 2, "keepalive": 2, "revoke": 2, "list": 1}
	var id uint64
	var ttl time.Duration
	pos, code, ok := parseArgs(fs, leaseSynopsis, args, stdout, stderr, func(pos []string) error {
		if err := checkOutput(*out); err != nil {
			return err
		}
		if len(pos) == 0 || want[pos[0]] != len(pos) {
			return errors.New("want grant TTL, keepalive ID, revoke ID or list")
		}
		if len(pos) != 2 {
			return nil
		}
		var err error
		if pos[0] == "grant" {
			ttl, err = time.ParseDuration(pos[1])
		} else {
			id, err = strconv.ParseUint(pos[1], 10, 64)
		}
		if err != nil {
			return fmt.Errorf("%s %q: %v", pos[0], pos[1], err)
		}
		return nil
	})
	if !ok {
		return code
	}
	c := cf.dial("lease", stderr)
	if c == nil {
		return exitUsage
	}
	defer c.Close()
	p := printer{w: stdout, format: *out}
	ctx, cancel := context.WithTimeout(context.Background(), cf.timeout)
	defer cancel()
	switch pos[0] {
	case "grant":
		l, _, err := c.LeaseGrant(ctx, ttl)
		if err != nil {
			return reportError(stderr, "lease grant", "", cf.timeout, err)
		}
		if p.format == outJSON {
			p.json(l)
		} else {
			fmt.Fprintln(stdout, l.ID)
		}
	case "keepalive":
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sig)
		for {
			start := time.Now()
			kctx, kcancel := context.WithTimeout(context.Background(), cf.timeout)
			l, _, err := c.LeaseKeepAlive(kctx, id)
			kcancel()
			if err != nil {
				return leaseError(stderr, id, cf.timeout, err)
			}
			if p.format == outJSON {
				p.json(l)
			} else {
				fmt.Fprintf(stdout, "lease %d kept alive until at least %s\n", id, start.Add(time.Duration(l.TTLMillis)*time.Millisecond).Format(time.RFC3339))
			}
			if *once {
				return exitOK
			}
			select {
			case <-sig:
				return exitOK
			case <-time.After(time.Duration(l.TTLMillis) * time.Millisecond / 3):
			}
		}
	case "revoke":
		n, _, err := c.LeaseRevoke(ctx, id)
		if err != nil {
			return leaseError(stderr, id, cf.timeout, err)
		}
		fmt.Fprintf(stdout, "lease %d revoked, %d keys deleted\n", id, n)
	case "list":
		ls, _, err := c.LeaseList(ctx)
		if err != nil {
			return reportError(stderr, "lease list", "", cf.timeout, err)
		}
		if p.format == outJSON {
			p.json(api.LeaseListBody{Leases: ls})
			return exitOK
		}
		for _, l := range ls {
			fmt.Fprintf(stdout, "%d\tttl %s\trenewed at index %d\t%d keys\n", l.ID, l.TTL, l.RenewIndex, len(l.Keys))
		}
	}
	return exitOK
}

func leaseError(stderr io.Writer, id uint64, timeout time.Duration, err error) int {
	if errors.Is(err, client.ErrLeaseNotFound) {
		fmt.Fprintf(stderr, "raftkv lease: lease %d not found (revoked or expired)\n", id)
		return exitNotFound
	}
	return reportError(stderr, "lease", "", timeout, err)
}

// heldLease is a lease kept alive in the background. Lost is closed when it
// may have expired: a keep-alive was refused (404), or none succeeded for
// TTL counted from when the last successful one was sent.
type heldLease struct {
	id   uint64
	ttl  time.Duration
	lost chan struct{}
	why  error
	stop context.CancelFunc
	wg   sync.WaitGroup
}

func holdLease(c *client.Client, ttl time.Duration) (*heldLease, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ttl)
	defer cancel()
	sent := time.Now() // the lease lives at least TTL from when the grant was sent
	l, _, err := c.LeaseGrant(ctx, ttl)
	if err != nil {
		return nil, fmt.Errorf("grant a lease: %w", err)
	}
	h := &heldLease{id: l.ID, ttl: ttl, lost: make(chan struct{})}
	kctx, stop := context.WithCancel(context.Background())
	h.stop = stop
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		valid := sent.Add(ttl)
		for {
			select {
			case <-kctx.Done():
				return
			case <-time.After(ttl / 3):
			}
			start := time.Now()
			actx, cancel := context.WithDeadline(kctx, valid)
			_, _, err := c.LeaseKeepAlive(actx, h.id)
			cancel()
			switch {
			case kctx.Err() != nil:
				return
			case err == nil:
				valid = start.Add(ttl)
			case errors.Is(err, client.ErrLeaseNotFound) || !time.Now().Before(valid):
				h.why = fmt.Errorf("lease %d lost: %w", h.id, err)
				close(h.lost)
				return
			}
		}
	}()
	return h, nil
}

// release stops the keep-alives and revokes the lease (deleting its keys).
func (h *heldLease) release(c *client.Client) {
	h.stop()
	h.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), h.ttl)
	defer cancel()
	c.LeaseRevoke(ctx, h.id)
}

// acquire takes key for the lease: it puts value with ?cas=0 (only if
// absent) and the lease, and waits for the key to go while someone else
// holds it. It returns the key's create index: the fencing token.
func acquire(ctx context.Context, c *client.Client, key, value string, h *heldLease, timeout time.Duration) (uint64, error) {
	zero := uint64(0)
	for {
		actx, cancel := context.WithTimeout(ctx, timeout)
		res, err := c.PutWith(actx, key, value, client.PutOptions{CAS: &zero, Lease: h.id})
		cancel()
		var ce *client.CASError
		switch {
		case err == nil:
			return res.Index, nil
		case errors.As(err, &ce):
			// Held: wait until the key changes past its state then.
			next := ce.Current.ModIndex
			for {
				wctx, cancel := context.WithTimeout(ctx, 30*time.Second+timeout)
				_, wres, werr := c.WaitEntry(wctx, key, next, 30*time.Second)
				cancel()
				if errors.Is(werr, client.ErrNotFound) || ctx.Err() != nil {
					break
				}
				if werr != nil {
					time.Sleep(100 * time.Millisecond) // a brief pause before asking a cluster in trouble again
				} else {
					next = wres.RaftIndex
				}
			}
		case errors.Is(err, client.ErrLeaseNotFound):
			return 0, fmt.Errorf("lease %d expired before the lock was taken", h.id)
		case errors.Is(err, client.ErrUnknownOutcome), errors.Is(err, client.ErrUnavailable):
			// Did the put apply? The value names our lease, so a read tells.
			rctx, cancel := context.WithTimeout(ctx, timeout)
			e, _, rerr := c.GetEntry(rctx, key)
			cancel()
			if rerr == nil && e.Value == value {
				return e.CreateIndex, nil
			}
		default:
			return 0, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-h.lost:
			return 0, h.why
		default:
		}
	}
}

// runLock runs COMMAND while holding the lock NAME; the command gets the
// fencing token in RAFTKV_FENCING_TOKEN.
func runLock(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("lock")
	var cf clusterFlags
	cf.register(fs, defaultCommandTimeout)
	ttl := fs.Duration("ttl", defaultLockTTL, "the lock's lease: a holder that dies frees it after this long")
	pos, code, ok := parseArgs(fs, lockSynopsis, args, stdout, stderr, func(pos []string) error {
		if len(pos) < 2 {
			return errors.New("want NAME -- COMMAND [ARGS...]")
		}
		return nil
	})
	if !ok {
		return code
	}
	c := cf.dial("lock", stderr)
	if c == nil {
		return exitUsage
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h, err := holdLease(c, *ttl)
	if err != nil {
		return reportError(stderr, "lock", pos[0], cf.timeout, err)
	}
	defer h.release(c)
	token, err := acquire(ctx, c, pos[0], fmt.Sprintf("lease %d", h.id), h, cf.timeout)
	if err != nil {
		fmt.Fprintf(stderr, "raftkv lock: %v\n", err)
		return exitUnavailable
	}
	cmd := exec.Command(pos[1], pos[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.Env = append(os.Environ(), envFencingToken+"="+strconv.FormatUint(token, 10), envLockKey+"="+pos[0],
		envLockLease+"="+strconv.FormatUint(h.id, 10))
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "raftkv lock: %v\n", err)
		return exitUsage
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-h.lost:
		// The lock may be someone else's now: stop the command.
		cmd.Process.Kill()
		<-done
		fmt.Fprintf(stderr, "raftkv lock: %v; the command was killed\n", h.why)
		return exitUnavailable
	case <-ctx.Done():
		cmd.Process.Signal(syscall.SIGTERM)
		err = <-done
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(stderr, "raftkv lock: %v\n", err)
		return exitUnavailable
	}
	return exitOK
}

// runElect campaigns for NAME with VALUE and holds the leadership until
// interrupted (then resigns) or until its lease is lost.
func runElect(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("elect")
	var cf clusterFlags
	cf.register(fs, defaultCommandTimeout)
	ttl := fs.Duration("ttl", defaultLockTTL, "the leadership's lease: a leader that dies is replaced after this long")
	pos, code, ok := parseArgs(fs, electSynopsis, args, stdout, stderr, func(pos []string) error {
		if len(pos) != 2 {
			return fmt.Errorf("want NAME VALUE, got %d arguments", len(pos))
		}
		return nil
	})
	if !ok {
		return code
	}
	c := cf.dial("elect", stderr)
	if c == nil {
		return exitUsage
	}
	defer c.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h, err := holdLease(c, *ttl)
	if err != nil {
		return reportError(stderr, "elect", pos[0], cf.timeout, err)
	}
	defer h.release(c)
	token, err := acquire(ctx, c, pos[0], pos[1], h, cf.timeout)
	if err != nil {
		if ctx.Err() != nil {
			return exitOK
		}
		fmt.Fprintf(stderr, "raftkv elect: %v\n", err)
		return exitUnavailable
	}
	fmt.Fprintf(stdout, "elected: %s = %s (lease %d, token %d)\n", pos[0], pos[1], h.id, token)
	select {
	case <-ctx.Done():
		fmt.Fprintf(stdout, "resigned: %s\n", pos[0])
		return exitOK
	case <-h.lost:
		fmt.Fprintf(stderr, "raftkv elect: %v: no longer the leader\n", h.why)
		return exitUnavailable
	}
}
