//go:build !linux

package demo

import (
	"os"
	"syscall"
)

func childSysProcAttr() *syscall.SysProcAttr { return nil }

func terminateGroup(p *os.Process) error { return p.Signal(os.Interrupt) }

func killGroup(p *os.Process) { _ = p.Kill() }
