package harness

import "syscall"

// childAttr makes the kernel kill a child process (redis-server, the bot)
// when the process that started it dies without stopping it.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
