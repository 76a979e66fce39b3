package transport

import (
	"net"
	"time"
)

// Dead-peer detection. A peer whose container is cut from the network, or
// whose host vanishes, sends no FIN or RST: without help, writes to it land
// in the kernel's buffer for minutes and Raft's messages silently go
// nowhere (a cluster that cannot elect a leader after a partition heals,
// because each node talks into a connection the network has forgotten).
// Keepalive probes find an idle dead connection, and TCP_USER_TIMEOUT
// (Linux) bounds how long sent data may stay unacknowledged; either way the
// connection fails, and the writer redials, resolving the address again.
const (
	keepAliveIdle     = time.Second
	keepAliveInterval = time.Second
	keepAliveCount    = 3
	userTimeout       = 3 * time.Second
)

var keepAlive = net.KeepAliveConfig{Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveCount}

// tuneConn applies the dead-peer detection to an accepted or dialed
// connection.
func tuneConn(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	_ = tc.SetKeepAliveConfig(keepAlive)
	setUserTimeout(tc, userTimeout)
}
