package redistest

import "syscall"

// childAttr makes the kernel kill a redis-server child when the test binary dies without
// running its cleanups (a test timeout panics, a developer hits Ctrl-C), so no server is
// left behind holding a port.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
