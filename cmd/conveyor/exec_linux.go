package main

import "syscall"

// setDeathSignal has the kernel send SIGKILL to the handler process if the
// worker dies first.
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
