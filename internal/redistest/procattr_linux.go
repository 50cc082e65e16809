//go:build linux

package redistest

import "syscall"

// procAttr makes the kernel kill redis-server if the test binary dies (a timeout panic or
// a kill -9 of `go test`), so no orphan servers keep ports and memory.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
