// Package certs makes the certificates of a raftkv cluster and loads them
// for peer mutual TLS.
//
// # Usage
//
// A cluster has one CA; every node has a certificate signed by it whose
// DNS SANs hold the node's hostfile name (how peers recognise each other)
// plus the hosts it is reached at (for HTTP clients):
//
//	ca, err := certs.NewCA(certs.Options{})          // ECDSA P-256, 10 years
//	err = ca.Write(dir, false)                        // dir/ca.pem, dir/ca-key.pem
//	cert, key, err := ca.Issue("r0", []string{"r0", "127.0.0.1"}, certs.Options{})
//	err = certs.WriteNode(dir, "r0", cert, key, false) // dir/r0.pem, dir/r0-key.pem
//	cfg, err := certs.LoadPeer(certs.CAPath(dir), certPath, keyPath)
//
// `raftkv certs init` and `raftkv certs node` are thin wrappers. Keys are
// written with mode 0600 and no file is overwritten unless force is set.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names in a certificates folder (CONTRACT.md).
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
)

// Validity defaults.
const (
	DefaultCADays   = 3650
	DefaultNodeDays = 365
)

// CAPath is dir/ca.pem.
func CAPath(dir string) string { return filepath.Join(dir, CAFile) }

// NodePaths returns dir/NAME.pem and dir/NAME-key.pem.
func NodePaths(dir, name string) (cert, key string) {
	return filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
}

// Options tune a new certificate.
type Options struct {
	// Days of validity (0: DefaultCADays for a CA, DefaultNodeDays for a
	// node).
	Days int
	// NotBefore is the start of validity (zero: now minus a minute, for
	// clocks slightly behind). Tests set it in the past to make an expired
	// certificate.
	NotBefore time.Time
}

func (o Options) window(defDays int) (notBefore, notAfter time.Time, err error) {
	days := o.Days
	if days == 0 {
		days = defDays
	}
	if days < 0 {
		return time.Time{}, time.Time{}, fmt.Errorf("certs: %d days of validity: want a positive number", days)
	}
	notBefore = o.NotBefore
	if notBefore.IsZero() {
		notBefore = time.Now().Add(-time.Minute)
	}
	return notBefore, notBefore.Add(time.Duration(days) * 24 * time.Hour), nil
}

// CA is a cluster's certificate authority.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
	der  []byte
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// NewCA makes a self-signed CA with an ECDSA P-256 key.
func NewCA(o Options) (*CA, error) {
	nb, na, err := o.window(DefaultCADays)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("certs: generate CA key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "raftkv cluster CA " + sn.Text(16)[:8], Organization: []string{"raftkv"}},
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("certs: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, der: der}, nil
}

// LoadCA reads dir/ca.pem and dir/ca-key.pem.
func LoadCA(dir string) (*CA, error) {
	pair, err := tls.LoadX509KeyPair(CAPath(dir), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("certs: load the CA from %s (run `raftkv certs init --dir %s` first): %w", dir, dir, err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("certs: %s: the CA key is %T, want ECDSA", filepath.Join(dir, CAKeyFile), pair.PrivateKey)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("certs: %s is not a CA certificate", CAPath(dir))
	}
	return &CA{Cert: cert, Key: key, der: pair.Certificate[0]}, nil
}

// CertPEM is the CA certificate in PEM.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.der})
}

// Write stores the CA as dir/ca.pem and dir/ca-key.pem (0600), creating dir.
func (ca *CA) Write(dir string, force bool) error {
	keyPEM, err := keyToPEM(ca.Key)
	if err != nil {
		return err
	}
	return writeFiles(dir, force, CAPath(dir), ca.CertPEM(), filepath.Join(dir, CAKeyFile), keyPEM)
}

// Issue makes a certificate for node name, for both server and client use.
// Its DNS SANs are name and every host that is not an IP; IP hosts become
// IP SANs.
func (ca *CA) Issue(name string, hosts []string, o Options) (certPEM, keyPEM []byte, err error) {
	if name == "" {
		return nil, nil, errors.New("certs: empty node name")
	}
	nb, na, err := o.window(DefaultNodeDays)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: generate key for %s: %w", name, err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"raftkv"}},
		NotBefore:    nb,
		NotAfter:     na,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:     []string{name},
	}
	for _, h := range hosts {
		switch ip := net.ParseIP(h); {
		case h == "":
		case ip != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		case h != name:
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: sign the certificate of %s: %w", name, err)
	}
	keyPEM, err = keyToPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// WriteNode stores a node's certificate and key as dir/NAME.pem and
// dir/NAME-key.pem (0600).
func WriteNode(dir, name string, certPEM, keyPEM []byte, force bool) error {
	c, k := NodePaths(dir, name)
	return writeFiles(dir, force, c, certPEM, k, keyPEM)
}

// Init makes a CA and writes it into dir: `raftkv certs init`.
func Init(dir string, o Options, force bool) error {
	ca, err := NewCA(o)
	if err != nil {
		return err
	}
	return ca.Write(dir, force)
}

// Node issues a certificate for name with the CA in dir and writes it
// there: `raftkv certs node`.
func Node(dir, name string, hosts []string, o Options, force bool) error {
	ca, err := LoadCA(dir)
	if err != nil {
		return err
	}
	c, k, err := ca.Issue(name, hosts, o)
	if err != nil {
		return err
	}
	return WriteNode(dir, name, c, k, force)
}

func keyToPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("certs: encode key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// writeFiles writes a certificate (0644) and its key (0600); without force
// it refuses, before writing anything, if either exists.
func writeFiles(dir string, force bool, certPath string, certPEM []byte, keyPath string, keyPEM []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if !force {
		var errs []error
		for _, p := range []string{certPath, keyPath} {
			if _, err := os.Lstat(p); err == nil {
				errs = append(errs, fmt.Errorf("certs: %s exists (use --force to replace it)", p))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	// The key first: a certificate without its key is useless, a key
	// without its certificate is harmless.
	if err := writeAtomic(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return writeAtomic(certPath, certPEM, 0o644)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("certs: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("certs: sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	ok = true
	return nil
}

// LoadPeer reads a node's TLS material: the cluster CA, the node's
// certificate and its key. The error names every problem (a missing or
// unreadable file, a CA that does not parse, a key that does not match
// the certificate, a certificate the CA did not sign). The returned config
// has the node's certificate and the CA in RootCAs and ClientCAs; the
// transport sets the rest (TLS 1.3, client certificates, server names).
func LoadPeer(caFile, certFile, keyFile string) (*tls.Config, error) {
	var errs []error
	pool := x509.NewCertPool()
	var caCerts []*x509.Certificate
	if b, err := os.ReadFile(caFile); err != nil {
		errs = append(errs, fmt.Errorf("CA certificate: %w", err))
	} else {
		for rest := b; ; {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if blk.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				errs = append(errs, fmt.Errorf("CA certificate %s: %w", caFile, err))
				continue
			}
			pool.AddCert(c)
			caCerts = append(caCerts, c)
		}
		if len(caCerts) == 0 && len(errs) == 0 {
			errs = append(errs, fmt.Errorf("CA certificate %s: no PEM CERTIFICATE block in it", caFile))
		}
	}
	var pair tls.Certificate
	_, certErr := os.ReadFile(certFile)
	if certErr != nil {
		errs = append(errs, fmt.Errorf("certificate: %w", certErr))
	}
	_, keyErr := os.ReadFile(keyFile)
	if keyErr != nil {
		errs = append(errs, fmt.Errorf("key: %w", keyErr))
	}
	if certErr == nil && keyErr == nil {
		var err error
		pair, err = tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("certificate %s with key %s: %w", certFile, keyFile, err))
		} else if len(caCerts) > 0 {
			leaf := pair.Leaf
			opts := x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
			if _, err := leaf.Verify(opts); err != nil {
				errs = append(errs, fmt.Errorf("certificate %s does not verify against CA %s: %w", certFile, caFile, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ClientCAs: pool, MinVersion: tls.VersionTLS13}, nil
}
