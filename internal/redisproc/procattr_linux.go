package redisproc

import "syscall"

// procAttr makes the kernel kill redis-server when the process that started
// it dies without stopping it.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
