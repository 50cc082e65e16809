package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const (
	// ClientCommonName is the subject common name of the client certificate, for servers
	// that check which certificate a request came with.
	ClientCommonName = "relay-test-client"
	// ServerCommonName is the subject common name of the server certificate. Clients
	// verify its SANs (127.0.0.1, ::1, localhost), never the common name.
	ServerCommonName = "127.0.0.1"
	// validity is how long the certificates stay valid on each side of New's clock:
	// backdated so that a peer whose clock is slightly behind still accepts them, and
	// long enough for any test run.
	validity = 24 * time.Hour
)

// PKI is one test CA with a server and a client certificate it signed. The files are in
// the test's temporary directory and removed with it.
type PKI struct {
	// CAFile is the CA certificate (PEM): the tls_ca_file a client verifies the server
	// against.
	CAFile string
	// ServerCertFile and ServerKeyFile are the server certificate and its key (PEM,
	// PKCS #8), valid for 127.0.0.1, ::1 and localhost.
	ServerCertFile, ServerKeyFile string
	// ClientCertFile and ClientKeyFile are the client certificate and its key (PEM,
	// PKCS #8): the tls_cert_file and tls_key_file of a client.
	ClientCertFile, ClientKeyFile string
	// Server and Client are the same certificates loaded, with their Leaf set.
	Server, Client tls.Certificate

	ca *x509.Certificate
}

// New issues a fresh PKI and writes its files into t.TempDir(). It fails the test on any
// error (call it from the test's goroutine).
func New(t testing.TB) *PKI {
	t.Helper()
	dir, now := t.TempDir(), time.Now()
	p := &PKI{
		CAFile:         filepath.Join(dir, "ca.pem"),
		ServerCertFile: filepath.Join(dir, "server.pem"),
		ServerKeyFile:  filepath.Join(dir, "server-key.pem"),
		ClientCertFile: filepath.Join(dir, "client.pem"),
		ClientKeyFile:  filepath.Join(dir, "client-key.pem"),
	}
	ca, caPEM, err := issue(&x509.Certificate{Subject: pkix.Name{CommonName: "relay test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}, nil, 1, now)
	if err != nil {
		t.Fatal(err)
	}
	p.ca = ca.Leaf
	var serverPEM, clientPEM [2][]byte
	p.Server, serverPEM, err = issue(&x509.Certificate{Subject: pkix.Name{CommonName: ServerCommonName},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, DNSNames: []string{"localhost"}}, &ca, 2, now)
	if err != nil {
		t.Fatal(err)
	}
	p.Client, clientPEM, err = issue(&x509.Certificate{Subject: pkix.Name{CommonName: ClientCommonName},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, &ca, 3, now)
	if err != nil {
		t.Fatal(err)
	}
	// 0600 for all five: keys readable by their owner only, as they would be in production.
	if err := errors.Join(
		os.WriteFile(p.CAFile, caPEM[0], 0o600),
		os.WriteFile(p.ServerCertFile, serverPEM[0], 0o600),
		os.WriteFile(p.ServerKeyFile, serverPEM[1], 0o600),
		os.WriteFile(p.ClientCertFile, clientPEM[0], 0o600),
		os.WriteFile(p.ClientKeyFile, clientPEM[1], 0o600),
	); err != nil {
		t.Fatal(err)
	}
	return p
}

// CertPool returns a new pool holding only the CA: RootCAs for a client, ClientCAs for a
// server. A new pool on each call, so that a test adding to it changes no other.
func (p *PKI) CertPool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(p.ca)
	return pool
}

// ServerTLS is a server configuration that presents the server certificate and requires
// a client certificate signed by the CA (mutual TLS), TLS 1.2 or later. Set it as an
// httptest.Server's TLS before StartTLS.
func (p *PKI) ServerTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.Server},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    p.CertPool(),
		MinVersion:   tls.VersionTLS12,
	}
}

// ClientTLS is a client configuration that verifies the server against the CA and
// presents the client certificate.
func (p *PKI) ClientTLS() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{p.Client},
		RootCAs:      p.CertPool(),
		MinVersion:   tls.VersionTLS12,
	}
}

// issue creates a certificate from tmpl with a fresh key, signed by parent (self-signed
// when parent is nil), and returns it loaded and as PEM: certificate, then PKCS #8 key.
func issue(tmpl *x509.Certificate, parent *tls.Certificate, serial int64, now time.Time) (tls.Certificate, [2][]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, [2][]byte{}, err
	}
	tmpl.SerialNumber = big.NewInt(serial)
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-validity), now.Add(validity)
	signerCert, signer := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signer = parent.Leaf, parent.PrivateKey.(crypto.Signer)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signer)
	if err != nil {
		return tls.Certificate{}, [2][]byte{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, [2][]byte{}, err
	}
	out := [2][]byte{
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	// X509KeyPair also checks that certificate and key match, and sets Leaf (Go 1.23+).
	pair, err := tls.X509KeyPair(out[0], out[1])
	return pair, out, err
}
