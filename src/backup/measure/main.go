// Command measure times `raftkv snapshot save`, `status` and `restore` on a
// local 3-node cluster holding -keys keys (BENCHMARKS and docs/deploy.md
// quote it):
//
//	go run ./src/backup/measure -keys 100000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"raftkv/src/bench"
	"raftkv/src/localcluster"
)

func main() {
	keys := flag.Int("keys", 100000, "keys to load before the save")
	valSize := flag.Int("val-size", 256, "value size in bytes")
	flag.Parse()
	if err := run(*keys, *valSize); err != nil {
		fmt.Fprintln(os.Stderr, "measure:", err)
		os.Exit(1)
	}
}

func run(keys, valSize int) error {
	dir, err := os.MkdirTemp("", "raftkv-backup-measure")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := localcluster.Build(dir)
	if err != nil {
		return err
	}
	c, err := localcluster.Start(localcluster.Options{Nodes: 3, Binary: bin, Dir: filepath.Join(dir, "a")})
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	lead, err := c.WaitLeader(ctx)
	if err != nil {
		return err
	}
	tlsCfg, tok, err := c.ClientAuth(localcluster.TokenAdmin)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := bench.PreloadRange(ctx, bench.Auth{TLS: tlsCfg, Token: tok}, c.Nodes[lead].HTTPAddr, 0, keys, 8, valSize, 16, nil); err != nil {
		return err
	}
	fmt.Printf("loaded %d keys of %d-byte values in %v\n", keys, valSize, time.Since(start).Round(time.Millisecond))
	file := filepath.Join(dir, "backup.snap")
	step := func(name string, args ...string) error {
		start := time.Now()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), c.ClientEnv(localcluster.TokenAdmin)...) // the CA and admin token
		out, err := cmd.CombinedOutput()
		fmt.Printf("--- raftkv %s: %v\n%s", name, time.Since(start).Round(time.Millisecond), out)
		return err
	}
	if err := step("snapshot save", "snapshot", "save", file, "--hostfile", c.Hostfile); err != nil {
		return err
	}
	if fi, err := os.Stat(file); err == nil {
		fmt.Printf("file size: %d bytes (%.1f MiB)\n", fi.Size(), float64(fi.Size())/(1<<20))
	}
	if err := step("snapshot status", "snapshot", "status", file); err != nil {
		return err
	}
	c2, err := localcluster.Start(localcluster.Options{Nodes: 3, Binary: bin, Dir: filepath.Join(dir, "b"), NoStart: true})
	if err != nil {
		return err
	}
	defer c2.Close()
	if err := step("snapshot restore", "snapshot", "restore", file, "--hostfile", c2.Hostfile, "--data", filepath.Join(dir, "b", "persistence")); err != nil {
		return err
	}
	start = time.Now()
	for i := range c2.Nodes {
		if err := c2.StartNode(i); err != nil {
			return err
		}
	}
	if _, err := c2.WaitLeader(ctx); err != nil {
		return err
	}
	fmt.Printf("restored cluster elected a leader %v after its nodes started\n", time.Since(start).Round(time.Millisecond))
	return nil
}
