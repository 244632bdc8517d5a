package redistest

import "syscall"

// procAttr makes the kernel kill redis-server when the test binary dies
// without running Main's cleanup.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
