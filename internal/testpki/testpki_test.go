package testpki_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/eventrelay/relay/internal/testpki"
)

// TestMutualTLS checks what the package promises: files that load, a server that accepts
// the client certificate and refuses a client without one, for every loopback name.
func TestMutualTLS(t *testing.T) {
	p := testpki.New(t)
	for _, pair := range [][2]string{{p.ClientCertFile, p.ClientKeyFile}, {p.ServerCertFile, p.ServerKeyFile}} {
		if _, err := tls.LoadX509KeyPair(pair[0], pair[1]); err != nil {
			t.Fatalf("%s: %v", pair[0], err)
		}
	}
	if pem, err := os.ReadFile(p.CAFile); err != nil || !x509.NewCertPool().AppendCertsFromPEM(pem) {
		t.Fatalf("CAFile holds no certificate: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	srv.TLS = p.ServerTLS()
	// The refused handshake below would log on the test's output.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	get := func(conf *tls.Config, host string) (string, error) {
		c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: conf}}
		defer c.CloseIdleConnections()
		res, err := c.Get("https://" + net.JoinHostPort(host, port))
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return string(b), err
	}
	for _, host := range []string{"127.0.0.1", "localhost"} {
		if cn, err := get(p.ClientTLS(), host); err != nil || cn != testpki.ClientCommonName {
			t.Errorf("%s with the client certificate: %q, %v", host, cn, err)
		}
	}
	anonymous := p.ClientTLS()
	anonymous.Certificates = nil
	if _, err := get(anonymous, "127.0.0.1"); err == nil {
		t.Error("a client without a certificate was served: mutual TLS is not required")
	}
}
