package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// LoadClient reads a client's TLS material for the HTTP API: the cluster
// CA that must have signed the node's certificate, and optionally a client
// certificate and key (both or neither; nodes started with
// --client-cert-auth ask for one).
func LoadClient(caFile, certFile, keyFile string) (*tls.Config, error) {
	var errs []error
	pool := x509.NewCertPool()
	if b, err := os.ReadFile(caFile); err != nil {
		errs = append(errs, fmt.Errorf("CA certificate: %w", err))
	} else if !pool.AppendCertsFromPEM(b) {
		errs = append(errs, fmt.Errorf("CA certificate %s: no PEM certificate in it", caFile))
	}
	// The session cache lets a reconnect (to a new leader, after an
	// error) resume instead of a full handshake.
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13, ClientSessionCache: tls.NewLRUClientSessionCache(64)}
	switch {
	case certFile == "" && keyFile == "":
	case certFile == "" || keyFile == "":
		errs = append(errs, errors.New("a client certificate needs both --cert and --key"))
	default:
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("certificate %s with key %s: %w", certFile, keyFile, err))
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return cfg, nil
}

// ReadToken returns a token given on a command line or in a variable:
// the value itself, or with a leading "@" the first line of that file (so
// that the token needs to appear neither in `ps` nor in a shell history).
func ReadToken(v string) (string, error) {
	path, isFile := strings.CutPrefix(v, "@")
	if !isFile {
		return strings.TrimSpace(v), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("token file: %w", err)
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	if tok = strings.TrimSpace(tok); tok == "" {
		return "", fmt.Errorf("token file %s is empty", path)
	}
	return tok, nil
}
