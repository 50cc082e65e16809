// Package loopback hands out free 127.0.0.1 addresses to tests and the bench harness,
// distinct within one call.
package loopback
