package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"raftkv/src/api"
)

// history is what both fake nodes committed: index 5 holds two changes.
var history = []api.WatchEvent{
	{Key: "k1", Type: "put", Index: 3, Value: "1"},
	{Key: "a", Type: "put", Index: 5, Value: "x"},
	{Key: "b", Type: "put", Index: 5, Value: "y"},
	{Key: "c", Type: "delete", Index: 7},
}

// fakeNode streams history above ?since=; cutAfter > 0 ends the stream
// after that many lines (a node that died mid-index), else it idles.
func fakeNode(t *testing.T, cutAfter int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		since, err := strconv.ParseUint(r.URL.Query().Get("since"), 10, 64)
		if err != nil || !strings.HasPrefix(r.URL.Path, "/v1/watch/") {
			http.Error(w, "bad request", 400)
			return
		}
		w.WriteHeader(200)
		n := 0
		for _, e := range history {
			if e.Index <= since {
				continue
			}
			b, _ := json.Marshal(e)
			fmt.Fprintf(w, "%s\n", b)
			w.(http.Flusher).Flush()
			if n++; n == cutAfter {
				return
			}
		}
		<-r.Context().Done()
	}))
	t.Cleanup(srv.Close)
	return srv
}

// watchAll runs Watch against a node that dies after two lines (in the
// middle of index 5) and a healthy one, until it saw 4 changes or 2 s.
func watchAll(t *testing.T) []string {
	a, b := fakeNode(t, 2), fakeNode(t, 0)
	c, err := New(Config{Endpoints: []string{strings.TrimPrefix(a.URL, "http://"), strings.TrimPrefix(b.URL, "http://")}})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var got []string
	enough := errors.New("enough")
	err = c.Watch(ctx, "", 0, func(e api.WatchEvent) error {
		got = append(got, fmt.Sprintf("%d %s", e.Index, e.Key))
		if len(got) == len(history) {
			return enough
		}
		return nil
	})
	if !errors.Is(err, enough) {
		t.Logf("watch ended with %v", err)
	}
	return got
}

// TestWatchResumesMidIndexExactlyOnce: a stream cut in the middle of an
// index resumes on another node after the last whole index and skips what
// it delivered of the cut one: every change once, in order.
func TestWatchResumesMidIndexExactlyOnce(t *testing.T) {
	require.Equal(t, []string{"3 k1", "5 a", "5 b", "7 c"}, watchAll(t))
}

// TestPlantedWatchResumeBugIsCaught: resuming after the cut index loses
// its second change; the check above must see it.
func TestPlantedWatchResumeBugIsCaught(t *testing.T) {
	testHookResumeFromCur = true
	defer func() { testHookResumeFromCur = false }()
	require.NotEqual(t, []string{"3 k1", "5 a", "5 b", "7 c"}, watchAll(t), "the planted resume bug went unnoticed")
}
