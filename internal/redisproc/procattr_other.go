//go:build !linux

package redisproc

import "syscall"

// procAttr returns nil: only Linux can tie redis-server's life to its
// parent's.
func procAttr() *syscall.SysProcAttr { return nil }
