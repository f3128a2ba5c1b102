package report

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Machine describes the computer a benchmark ran on.
type Machine struct {
	// CPUModel is the "model name" line of /proc/cpuinfo ("unknown" elsewhere).
	CPUModel string `json:"cpu_model"`
	// Cores is the number of logical CPUs the Go runtime sees.
	Cores int `json:"cores"`
	// GoVersion is runtime.Version() of the benchmark program.
	GoVersion string `json:"go_version"`
	// OS is GOOS/GOARCH.
	OS string `json:"os"`
	// Kernel is /proc/sys/kernel/osrelease, empty when unavailable.
	Kernel string `json:"kernel,omitempty"`
	// MemoryBytes is MemTotal from /proc/meminfo, in bytes; 0 when unavailable.
	MemoryBytes uint64 `json:"memory_bytes,omitempty"`
	// LoadAverage is the first three fields of /proc/loadavg when the run
	// started: a hint of how busy a shared machine was.
	LoadAverage string `json:"load_average,omitempty"`
}

// DetectMachine reads the facts of the current machine. Facts that cannot
// be read are left empty; it never fails.
func DetectMachine() Machine {
	m := Machine{
		CPUModel:  "unknown",
		Cores:     runtime.NumCPU(),
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS + "/" + runtime.GOARCH,
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if model := cpuModel(b); model != "" {
			m.CPUModel = model
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.MemoryBytes = memTotal(b)
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			m.LoadAverage = strings.Join(f[:3], " ")
		}
	}
	return m
}

// cpuModel returns the first "model name" (x86) or "Model"/"Hardware"
// (ARM) value of a /proc/cpuinfo text.
func cpuModel(cpuinfo []byte) string {
	var fallback string
	sc := bufio.NewScanner(bytes.NewReader(cpuinfo))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "model name":
			return val
		case "Model", "Hardware":
			if fallback == "" {
				fallback = val
			}
		}
	}
	return fallback
}

// memTotal returns MemTotal of a /proc/meminfo text in bytes.
func memTotal(meminfo []byte) uint64 {
	sc := bufio.NewScanner(bytes.NewReader(meminfo))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}
