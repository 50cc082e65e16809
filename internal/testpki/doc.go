// Package testpki issues a throwaway public key infrastructure for tests of mutual TLS:
// a CA, a server certificate for the loopback addresses and a client certificate, all
// signed by that CA and written as PEM files into t.TempDir(), the way the relay's
// configuration names them (tls_cert_file, tls_key_file, tls_ca_file).
//
// Keys are ECDSA P-256, so New costs about a millisecond: every test can have its own
// PKI, and no certificate or key is ever checked into the repository.
package testpki
