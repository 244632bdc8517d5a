//go:build !linux

package redistest

import "syscall"

// procAttr returns nil: only Linux can tie redis-server's life to the test
// binary's.
func procAttr() *syscall.SysProcAttr {
	return nil
}
