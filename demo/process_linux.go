package demo

import (
	"os"
	"syscall"
)

// childSysProcAttr puts a child in its own process group (so a terminal's
// Ctrl-C reaches only the demo, which then stops children in order) and has
// the kernel kill it if the demo dies.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func terminateGroup(p *os.Process) error { return syscall.Kill(-p.Pid, syscall.SIGTERM) }

func killGroup(p *os.Process) { _ = syscall.Kill(-p.Pid, syscall.SIGKILL) }
