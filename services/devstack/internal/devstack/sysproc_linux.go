package devstack

import "syscall"

// childSysProcAttr puts a child in its own process group, so a Ctrl-C in the
// terminal reaches only devstack, which then stops the children in order, and
// asks the kernel to stop the child if devstack itself dies.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
