// Package clientnode runs a client node (CONTRACT.md, `raftkv client`): it
// replays a data file against the cluster, one command per interval, keeps
// its record in persistence/<name>/record.json (api.ClientRecord), then
// idles until the run ends.
//
// Usage, from main:
//
//	cfg, err := config.LoadClientNode(args, os.Getenv, os.Hostname)
//	...
//	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
//	err = clientnode.Run(ctx, cfg, lg) // nil at a clean stop
//
// The record is replaced atomically after every command, so a reader (an
// experiment, after the client was killed) always finds whole JSON.
package clientnode

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"raftkv/src/api"
	"raftkv/src/client"
	"raftkv/src/config"
	"raftkv/src/datafile"
	"raftkv/src/storage"
)

const (
	// commandTimeout bounds each command, retries included; longer than a
	// leader election.
	commandTimeout = 10 * time.Second
	// leaderWaitMax bounds the wait for a leader at start.
	leaderWaitMax = 30 * time.Second
)

// Run is the client node's body; it returns nil at a clean stop (the end of
// ctx), and an error when the data file or the record cannot be used.
func Run(ctx context.Context, cfg *config.ClientNode, lg *zap.Logger) error {
	f, err := os.Open(cfg.Datafile)
	if err != nil {
		return fmt.Errorf("data file: %w", err)
	}
	cmds, bad := datafile.Parse(f, cfg.Datafile)
	f.Close()
	var badLines []string
	for _, e := range bad {
		lg.Warn("bad line in data file, skipped", zap.Error(e))
		badLines = append(badLines, e.Error())
	}

	dir := filepath.Join(cfg.DataDir, cfg.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("record folder: %w", err)
	}
	recPath := filepath.Join(dir, api.RecordFile)

	// A fresh client ID per run: the cluster's session of an earlier run
	// must not swallow this run's first sequence numbers.
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	var names []string
	if cfg.Hostfile != nil && len(cfg.Hostfile.Raft) == len(cfg.Endpoints) && strings.Join(cfg.Hostfile.HTTPAddrs(), ",") == strings.Join(cfg.Endpoints, ",") {
		names = cfg.Hostfile.Names()
	}
	c, err := client.New(client.Config{
		Endpoints: cfg.Endpoints,
		Names:     names,
		ClientID:  cfg.Name + "-" + hex.EncodeToString(b[:]),
		Logger:    lg,
		TLS:       cfg.TLS,
		Token:     cfg.Token,
	})
	if err != nil {
		return err
	}
	defer c.Close()

	rec := &api.ClientRecord{
		Client: cfg.Name, ClientID: c.ClientID(), Datafile: cfg.Datafile, Endpoints: cfg.Endpoints,
		Started: timestamp(time.Now()), BadLines: badLines, Commands: []api.RecordCommand{},
	}
	if err := saveRecord(recPath, rec); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	lg.Info("client node started", zap.String("client_id", c.ClientID()), zap.String("datafile", cfg.Datafile),
		zap.Int("commands", len(cmds)), zap.Int("bad_lines", len(bad)), zap.String("record", recPath),
		zap.Duration("interval", cfg.Interval), zap.Duration("duration", cfg.Duration))

	waitForLeader(ctx, c, lg)

	for i, cmd := range cmds {
		if ctx.Err() != nil {
			break
		}
		if i > 0 && !sleepCtx(ctx, cfg.Interval) {
			break
		}
		e := runCommand(ctx, c, cmd)
		rec.Commands = append(rec.Commands, e)
		fields := []zap.Field{zap.Int("line", e.Line), zap.Stringer("op", e.Op), zap.String("key", e.Key),
			zap.String("outcome", string(e.Outcome)), zap.String("leader", e.Leader), zap.Int("attempts", e.Attempts)}
		if !e.Op.IsWrite() {
			if e.Read != nil {
				fields = append(fields, zap.Stringp("read", e.Read))
			} else if e.Found != nil {
				fields = append(fields, zap.Bool("found", false))
			}
		} else {
			fields = append(fields, zap.Uint64("seq", e.Seq), zap.Uint64("index", e.Index))
		}
		if e.Error != "" {
			lg.Warn("command failed", append(fields, zap.String("error", e.Error))...)
		} else {
			lg.Info("command done", fields...)
		}
		if err := saveRecord(recPath, rec); err != nil {
			return fmt.Errorf("record: %w", err)
		}
	}
	if len(rec.Commands) == len(cmds) {
		rec.AllSent = true
		if err := saveRecord(recPath, rec); err != nil {
			return fmt.Errorf("record: %w", err)
		}
		lg.Info("all commands sent; idling until the run ends", zap.Int("commands", len(cmds)))
	}
	<-ctx.Done()
	rec.Stopped = timestamp(time.Now())
	if err := saveRecord(recPath, rec); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	lg.Info("client node stopped", zap.Int("sent", len(rec.Commands)), zap.Int("commands", len(cmds)))
	return nil
}

// saveRecord replaces path with r atomically: temp file, fsync, rename,
// fsync of the folder.
func saveRecord(path string, r *api.ClientRecord) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return storage.WriteFileAtomic(path, data, []byte("\n"))
}

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// runCommand sends one data-file command and describes what happened.
func runCommand(ctx context.Context, c *client.Client, cmd datafile.Command) api.RecordCommand {
	e := api.RecordCommand{Line: cmd.Line, Op: cmd.Op, Key: cmd.Key, Value: cmd.Value, CAS: cmd.CAS, Prefix: cmd.Prefix, ClientID: c.ClientID()}
	cctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	start := time.Now()
	var (
		read string
		res  client.Result
		err  error
	)
	switch {
	case cmd.CAS != nil:
		// A failed compare (a *client.CASError) is a definite "not
		// applied": recorded as an error.
		res, err = c.PutCAS(cctx, cmd.Key, cmd.Value, *cmd.CAS)
	case cmd.Prefix:
		_, res, err = c.DeletePrefix(cctx, cmd.Key)
	default:
		read, res, err = c.Do(cctx, cmd.Op, cmd.Key, cmd.Value)
	}
	e.Start, e.End = timestamp(start), timestamp(time.Now())
	e.Seq, e.Index, e.Node, e.Leader, e.Attempts = res.Seq, res.Index, res.Node, res.Leader, res.Attempts
	if !cmd.Op.IsWrite() {
		switch {
		case err == nil:
			found := true
			e.Found, e.Read = &found, &read
		case errors.Is(err, client.ErrNotFound):
			found := false
			e.Found = &found
			err = nil
		}
	}
	e.Outcome = outcome(err)
	if err != nil {
		e.Error = err.Error()
	}
	return e
}

// outcome maps a command's error (a get's ErrNotFound already taken out)
// to what the record says.
func outcome(err error) api.Outcome {
	switch {
	case err == nil:
		return api.OutcomeOK
	case errors.Is(err, client.ErrUnknownOutcome):
		return api.OutcomeUnknown
	default:
		return api.OutcomeError
	}
}

// waitForLeader polls the nodes' status until one names a leader, for at
// most leaderWaitMax; the commands retry on their own anyway.
func waitForLeader(ctx context.Context, c *client.Client, lg *zap.Logger) {
	ctx, cancel := context.WithTimeout(ctx, leaderWaitMax)
	defer cancel()
	for {
		for _, st := range c.Statuses(ctx) {
			if st.Reachable && st.Leader != "" {
				lg.Info("cluster has a leader", zap.String("leader", st.Leader), zap.Uint64("term", st.Term))
				return
			}
		}
		if !sleepCtx(ctx, 100*time.Millisecond) {
			lg.Warn("no leader yet; sending anyway", zap.Error(ctx.Err()))
			return
		}
	}
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
