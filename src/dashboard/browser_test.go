package dashboard_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"raftkv/src/localcluster"
)

// findChromium returns the browser to drive, or skips the test loudly when
// there is none (`make chromium` installs Debian's package). In CI
// (CI=true) or with RAFT_REQUIRE_CHROMIUM=1 a missing browser fails.
func findChromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no Chromium found (chromium, chromium-browser, google-chrome, headless-shell): " +
		"the dashboard browser test cannot run; install it with `make chromium` (apt-get install -y chromium)"
	if os.Getenv("CI") == "true" || os.Getenv("RAFT_REQUIRE_CHROMIUM") == "1" {
		t.Fatal(msg)
	}
	banner := strings.Repeat("!", 78)
	fmt.Fprintf(os.Stderr, "\n%s\n!!! SKIPPED: %s\n%s\n\n", banner, msg, banner)
	t.Skip("SKIPPED LOUDLY: " + msg)
	return ""
}

// artifactDir is where screenshots go: $RAFT_ARTIFACTS_DIR, or
// <tmp>/raftkv-artifacts. The test logs the path.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("RAFT_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "raftkv-artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact folder: %v", err)
	}
	return dir
}

// TestDashboardFollowsLeader loads the dashboard of a real 3-node cluster
// in headless Chromium: the page must name the actual leader, and after
// the leader is killed, name the new one within a few seconds and mark the
// dead node unreachable.
func TestDashboardFollowsLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster and a browser")
	}
	browser := findChromium(t)
	dir := t.TempDir()
	bin, err := localcluster.Build(dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := localcluster.Start(localcluster.Options{Nodes: 3, Binary: bin, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	leader := waitLeader(t, ctx, c)
	page := (leader + 1) % len(c.Nodes) // a follower serves the page: it outlives the leader
	t.Logf("leader %s; page served by %s", c.Nodes[leader].Name, c.Nodes[page].Name)

	// A light, bounded write load so the chart has something to draw.
	loadCtx, stopLoad := context.WithCancel(ctx)
	writer, err := c.HTTPClient(localcluster.TokenReadWrite, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		writeLoad(loadCtx, writer, c.URL, len(c.Nodes))
	}()
	defer func() {
		stopLoad()
		wg.Wait()
	}()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1280, 1000),
		chromedp.Flag("disable-dev-shm-usage", true),
		// The nodes' certificates come from the test's own CA, which a
		// headless Chromium has no trust store to take; the test checks
		// the page, TLS is checked by the Go clients' tests.
		chromedp.Flag("ignore-certificate-errors", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	url := c.URL(page, "/")
	if err := chromedp.Do(bctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s in %s: %v", url, browser, err)
	}
	// Without a token the page asks for one; with one in the URL's
	// fragment it reads the cluster and drops the token from the URL.
	if err := chromedp.Do(bctx, chromedp.Poll[chromedp.Void](`!document.getElementById('login').hidden`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("no token, no login form: %v", err)
	}
	_, token, err := c.ClientAuth(localcluster.TokenReadOnly)
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(url+"#token="+token)); err != nil {
		t.Fatalf("open %s with a token: %v", url, err)
	}
	if err := pollAcrossReload(bctx, `location.hash === '' && document.getElementById('security').dataset.secure === 'true'`, 10*time.Second); err != nil {
		t.Fatalf("the token in the fragment was not taken, or the page does not show TLS and tokens: %v", err)
	}

	name := c.Nodes[leader].Name
	waitShown(t, bctx, name, 10*time.Second)
	// Let the chart gather a few seconds of samples before the first picture.
	if err := chromedp.Do(bctx, chromedp.Poll[chromedp.Void](`samples.length >= 6`, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("chart never got samples: %v", err)
	}
	arts := artifactDir(t)
	screenshot(t, bctx, filepath.Join(arts, "dashboard-before-kill.png"))

	killed := time.Now()
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	newLeader := waitLeader(t, ctx, c)
	newName := c.Nodes[newLeader].Name
	t.Logf("killed %s; cluster elected %s after %v", name, newName, time.Since(killed).Round(time.Millisecond))
	remaining := 10*time.Second - time.Since(killed)
	waitShown(t, bctx, newName, remaining)
	t.Logf("page showed %s %v after the kill", newName, time.Since(killed).Round(time.Millisecond))
	dead := fmt.Sprintf(`document.querySelector('[data-node=%q]')?.dataset.role === 'unreachable'`, name)
	if err := chromedp.Do(bctx, chromedp.Poll[chromedp.Void](dead, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Errorf("the killed leader %s is not marked unreachable: %v", name, err)
	}
	screenshot(t, bctx, filepath.Join(arts, "dashboard.png"))
}

func waitLeader(t *testing.T, ctx context.Context, c *localcluster.Cluster) int {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	i, err := c.WaitLeader(wctx)
	if err != nil {
		for j := range c.Nodes {
			t.Logf("log of %s:\n%s", c.Nodes[j].Name, c.Log(j))
		}
		t.Fatal(err)
	}
	return i
}

// waitShown polls the page until its header and the leader's card name
// leader, or fails after timeout with what the page shows.
func waitShown(t *testing.T, bctx context.Context, leader string, timeout time.Duration) {
	t.Helper()
	cond := fmt.Sprintf(`document.getElementById('leader-name').dataset.leader === %q &&
		document.querySelector('[data-node=%q]')?.dataset.role === 'leader' &&
		document.querySelector('[data-node=%q]')?.classList.contains('leader')`, leader, leader, leader)
	if err := chromedp.Do(bctx, chromedp.Poll[chromedp.Void](cond, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(timeout))); err != nil {
		shown, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById('leader-name').textContent + ' | ' + document.getElementById('nodes').innerText.replace(/\n/g, ' ')`))
		t.Fatalf("page did not show leader %s within %v: %v; it shows %q", leader, timeout, err, shown)
	}
}

func screenshot(t *testing.T, bctx context.Context, path string) {
	t.Helper()
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot saved: %s", path)
}

// writeLoad puts keys at most every 5 ms, through any of the n nodes
// (followers forward), until ctx ends or 100000 requests were sent.
func writeLoad(ctx context.Context, client *http.Client, url func(int, string) string, n int) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for i := 0; i < 100000; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, url(i%n, fmt.Sprintf("/v1/kv/k%d", i%100)), strings.NewReader("value"))
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}
}

// pollAcrossReload polls expr until it is true or timeout passes, like
// chromedp.Poll, but starts again when the page's JavaScript context is
// replaced under the poll (Chromium: "Cannot find context with specified
// id"), which a navigation that is still settling can do.
func pollAcrossReload(ctx context.Context, expr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			left = time.Millisecond
		}
		err := chromedp.Do(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(left)))
		if err == nil || !strings.Contains(err.Error(), "Cannot find context") || time.Now().After(deadline) {
			return err
		}
	}
}
