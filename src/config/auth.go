package config

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"strconv"

	"raftkv/src/certs"
)

// Client authentication on the HTTP API (CONTRACT.md "Second wave": TLS
// and tokens). The HTTPS side uses the node's TLS material (--cacert,
// --cert, --key); these settings add tokens and client certificates.
const (
	EnvTokens         = "RAFTKV_TOKENS"           // the tokens file (--tokens)
	EnvClientCertAuth = "RAFTKV_CLIENT_CERT_AUTH" // --client-cert-auth
	EnvOpenHealth     = "RAFTKV_OPEN_HEALTH"      // --open-health
	// EnvToken is a client's token, or @FILE (--token).
	EnvToken = "RAFTKV_TOKEN"
)

// HTTPAuth is how a node's HTTP API authenticates clients.
type HTTPAuth struct {
	// TokensFile is where Tokens came from ("" with --insecure).
	TokensFile string
	// Tokens are the accepted bearer tokens. Invariant: nil iff the node
	// is Insecure (a node with TLS needs tokens; a plaintext one may not
	// have them: they would cross the network in clear).
	Tokens *certs.Tokens
	// ClientCertAuth: requests need a client certificate of the cluster CA.
	ClientCertAuth bool
	// HealthNeedsToken: /healthz, /readyz and /metrics need a token too
	// (--open-health=false; by default they are open to probes).
	HealthNeedsToken bool
}

func registerAuthFlags(s *settings) {
	fs := s.fs
	fs.String("tokens", "", "the HTTP API's tokens file, JSON of token hashes and roles (default $"+EnvTokens+"; required with TLS; make one with `raftkv certs token`)")
	fs.Bool("client-cert-auth", false, "HTTP clients must also present a certificate signed by the cluster CA (default $"+EnvClientCertAuth+", else false)")
	fs.Bool("open-health", true, "serve /healthz, /readyz and /metrics without a token (default $"+EnvOpenHealth+", else true)")
}

// boolSetting reads a boolean flag or variable, def when neither is given.
func (s *settings) boolSetting(flagName, env string, def bool) bool {
	v, from, ok := s.value(flagName, env)
	if !ok {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		s.failf("%s %q is not true or false", from, v)
	}
	return b
}

// httpAuth reads the tokens file and the client-certificate and health
// settings, and checks them against the node's TLS choice.
func (s *settings) httpAuth(insecure bool) HTTPAuth {
	a := HTTPAuth{
		ClientCertAuth:   s.boolSetting("client-cert-auth", EnvClientCertAuth, false),
		HealthNeedsToken: !s.boolSetting("open-health", EnvOpenHealth, true),
	}
	path, from, given := s.value("tokens", EnvTokens)
	switch {
	case insecure && given:
		s.failf("%s %q with --insecure: tokens would cross the network in clear over plaintext HTTP; give the node TLS material (--cacert, --cert, --key) or drop the tokens", from, path)
	case insecure && a.ClientCertAuth:
		s.failf("--client-cert-auth (or %s) needs TLS, not --insecure", EnvClientCertAuth)
	case insecure:
	case !given:
		s.failf("no tokens for the HTTP API: give --tokens FILE (or %s); make one with "+
			"`raftkv certs token NAME --role read-only|read-write|admin --dir certs` (it writes certs/%s); "+
			"a node with TLS never serves its API to anonymous clients", EnvTokens, certs.TokensFile)
	default:
		t, err := certs.LoadTokens(path)
		if err != nil {
			s.failf("%s: %w", from, err)
		}
		a.TokensFile, a.Tokens = path, t
	}
	return a
}

// ClientAuth loads a client's TLS material and token, each already picked
// (flag over variable): with a CA the client talks HTTPS (nil: plaintext,
// for nodes run --insecure); the token is given as is or as @FILE. A
// token without TLS is refused: it would cross the network in clear.
func ClientAuth(caFile, certFile, keyFile, token string) (*tls.Config, string, error) {
	var errs []error
	var cfg *tls.Config
	switch {
	case caFile != "":
		var err error
		if cfg, err = certs.LoadClient(caFile, certFile, keyFile); err != nil {
			errs = append(errs, err)
		}
	case certFile != "" || keyFile != "":
		errs = append(errs, fmt.Errorf("--cert and --key need --cacert (or %s)", EnvCACert))
	}
	if token != "" {
		var err error
		if token, err = certs.ReadToken(token); err != nil {
			errs = append(errs, err)
		} else if caFile == "" {
			errs = append(errs, fmt.Errorf("a token needs HTTPS: give --cacert (or %s) too", EnvCACert))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, "", err
	}
	return cfg, token, nil
}

// ClientAuthFlags are a client's --cacert, --cert, --key and --token
// (the CLI, `raftkv client`, `raftkv bench`), over RAFTKV_CACERT,
// RAFTKV_CERT, RAFTKV_KEY and RAFTKV_TOKEN.
type ClientAuthFlags struct {
	cacert, cert, key, token *string
}

// RegisterClientAuthFlags adds the flags to fs.
func RegisterClientAuthFlags(fs *flag.FlagSet) *ClientAuthFlags {
	return &ClientAuthFlags{
		cacert: fs.String("cacert", "", "the cluster CA certificate: talk HTTPS to the nodes (default $"+EnvCACert+")"),
		cert:   fs.String("cert", "", "a client certificate, for nodes run with --client-cert-auth (default $"+EnvCert+")"),
		key:    fs.String("key", "", "the client certificate's key (default $"+EnvKey+")"),
		token:  fs.String("token", "", "bearer token, or @FILE to read it from FILE (default $"+EnvToken+")"),
	}
}

// Load resolves the flags over the variables (read through getenv) with
// ClientAuth.
func (f *ClientAuthFlags) Load(getenv func(string) string) (*tls.Config, string, error) {
	pick := func(v *string, env string) string {
		if *v != "" {
			return *v
		}
		return getenv(env)
	}
	return ClientAuth(pick(f.cacert, EnvCACert), pick(f.cert, EnvCert), pick(f.key, EnvKey), pick(f.token, EnvToken))
}
