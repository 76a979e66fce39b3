package httpapi

import (
	"bytes"
	"errors"
	"net"
	"strconv"
)

// A plaintext HTTP request to the HTTPS port would get net/http's own
// 400 in plain text. guardListener answers it as every other error is
// answered, JSON {"error": ...}, saying what to do, and closes the
// connection before any TLS state is made.

// plaintextReply is written to a client that spoke HTTP to the HTTPS port.
var plaintextReply = func() []byte {
	body := `{"error":"this node serves HTTPS: use https:// and the cluster CA"}` + "\n"
	return []byte("HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// errPlaintext fails the TLS handshake of a plaintext HTTP client.
var errPlaintext = errors.New("a plaintext HTTP request on the HTTPS port (answered with a JSON 400)")

// httpMethods are the first bytes of a plaintext HTTP request (a TLS
// connection starts with 0x16, a handshake record).
var httpMethods = [][]byte{[]byte("GET "), []byte("HEAD"), []byte("POST"), []byte("PUT "), []byte("DELE"), []byte("OPTI"), []byte("PATC"), []byte("CONN"), []byte("TRAC")}

type guardListener struct{ net.Listener }

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardConn{Conn: c}, nil
}

// guardConn looks at the first bytes the TLS server reads: if they start
// an HTTP request, it answers and fails the read.
type guardConn struct {
	net.Conn
	checked bool // only the first read can be a plaintext request
}

func (c *guardConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.checked || n == 0 {
		return n, err
	}
	c.checked = true
	if n >= 4 {
		for _, m := range httpMethods {
			if bytes.Equal(b[:4], m) {
				c.Conn.Write(plaintextReply)
				return 0, errPlaintext
			}
		}
	}
	return n, err
}
