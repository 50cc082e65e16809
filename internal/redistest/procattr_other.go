//go:build !linux

package redistest

import "syscall"

// procAttr: outside Linux there is no parent-death signal; t.Cleanup still kills the server.
func procAttr() *syscall.SysProcAttr { return nil }
