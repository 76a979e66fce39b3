package httpapi

import (
	"net"
	"net/http"
	"sync"
)

// freshConns tracks the connections accepted that have not carried a
// request yet (http.StateNew), so that a clean stop closes them at once.
// http.Server.Shutdown waits for them as if they were busy (up to 5 s):
// with HTTPS, a client's connection pool often holds such a connection (it
// dialed for a request that an older connection then served), and every
// clean stop waited out the shutdown deadline. Closing one is safe: it
// carries no request, and a client retries a request it could not write.
type freshConns struct {
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// track is the http.Server's ConnState hook.
func (f *freshConns) track(c net.Conn, s http.ConnState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s == http.StateNew {
		if f.conns == nil {
			f.conns = map[net.Conn]struct{}{}
		}
		f.conns[c] = struct{}{}
		return
	}
	delete(f.conns, c)
}

// closeAll closes every connection that has not carried a request; it
// runs when Shutdown starts (RegisterOnShutdown), after the listener is
// closed.
func (f *freshConns) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
		delete(f.conns, c)
	}
}
