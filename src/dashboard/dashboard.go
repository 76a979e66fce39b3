// Package dashboard serves the live cluster page: static HTML, JavaScript
// and CSS embedded in the binary (no build step, no external assets). The
// page reads only the node's JSON endpoints: GET /v1/cluster every half
// second for roles, terms and indexes, and GET /v1/metrics-summary?scope=cluster
// for commit latency; it computes commits per second from commit_index
// deltas and draws its chart by hand on a canvas.
//
// Mount it on a node's mux:
//
//	mux.Handle("GET /{$}", dashboard.Handler())
//	mux.Handle("GET /ui/", dashboard.Handler())
package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Handler serves the page at "/" and its assets under "/ui/".
func Handler() http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	files := http.FileServerFS(sub)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		switch {
		case r.URL.Path == "/":
			http.ServeFileFS(w, r, sub, "index.html")
		case len(r.URL.Path) > len("/ui/") && r.URL.Path[:len("/ui/")] == "/ui/":
			r2 := r.Clone(r.Context())
			r2.URL.Path = r.URL.Path[len("/ui"):]
			files.ServeHTTP(w, r2)
		default:
			http.NotFound(w, r)
		}
	})
}
