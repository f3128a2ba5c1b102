// Package procstat reads the CPU time and peak memory of a process tree
// from Linux /proc, for benchmarks that measure what a proxy or server
// costs. CPU is utime+stime of /proc/<pid>/stat; peak memory is VmHWM of
// /proc/<pid>/status, resettable by writing "5" to /proc/<pid>/clear_refs.
// Multi-process servers (nginx master and workers) are measured as the sum
// over the process and all its descendants.
package procstat

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime/stime: 100 on every Linux ABI
// Go supports.
const clockTicks = 100

// Tree returns pid and all its live descendants.
func Tree(pid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(p)
		if err != nil {
			continue // exited meanwhile
		}
		children[st.ppid] = append(children[st.ppid], p)
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err != nil {
		return nil, fmt.Errorf("process %d: %w", pid, err)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out, nil
}

type stat struct {
	ppid         int
	utime, stime uint64
}

func readStat(pid int) (stat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return stat{}, err
	}
	return parseStat(b)
}

// parseStat parses /proc/<pid>/stat; the command name (field 2) may hold
// spaces and parentheses, so fields are counted after its last ')'.
func parseStat(b []byte) (stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("malformed /proc stat %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); ppid is field 4, utime 14, stime 15.
	if len(f) < 13 {
		return stat{}, fmt.Errorf("malformed /proc stat: %d fields after the name", len(f))
	}
	ppid, err1 := strconv.Atoi(f[1])
	ut, err2 := strconv.ParseUint(f[11], 10, 64)
	st, err3 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return stat{}, fmt.Errorf("malformed /proc stat fields %q", f[:13])
	}
	return stat{ppid: ppid, utime: ut, stime: st}, nil
}

// CPUTime is the user+system CPU time used so far by pid and its
// descendants.
func CPUTime(pid int) (time.Duration, error) {
	pids, err := Tree(pid)
	if err != nil {
		return 0, err
	}
	var ticks uint64
	for _, p := range pids {
		st, err := readStat(p)
		if err != nil {
			if p == pid {
				return 0, fmt.Errorf("cpu time of %d: %w", pid, err)
			}
			continue
		}
		ticks += st.utime + st.stime
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// PeakRSS is the sum of VmHWM (peak resident set size) over pid and its
// descendants, in bytes.
func PeakRSS(pid int) (uint64, error) {
	return sumStatus(pid, "VmHWM:")
}

// RSS is the sum of VmRSS (current resident set size) over pid and its
// descendants, in bytes.
func RSS(pid int) (uint64, error) {
	return sumStatus(pid, "VmRSS:")
}

func sumStatus(pid int, key string) (uint64, error) {
	pids, err := Tree(pid)
	if err != nil {
		return 0, err
	}
	var total uint64
	for _, p := range pids {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p), "status"))
		if err != nil {
			if p == pid {
				return 0, fmt.Errorf("status of %d: %w", pid, err)
			}
			continue
		}
		v, err := statusValue(b, key)
		if err != nil {
			return 0, fmt.Errorf("status of %d: %w", p, err)
		}
		total += v
	}
	return total, nil
}

// statusValue reads a "Key:   123 kB" line of /proc/<pid>/status in bytes.
func statusValue(b []byte, key string) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == key {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("malformed %s %q", key, f[1])
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("no %s line", key)
}

// ResetPeakRSS resets VmHWM to the current RSS for pid and its
// descendants (Linux ≥ 4.0; needs permission to write clear_refs).
func ResetPeakRSS(pid int) error {
	pids, err := Tree(pid)
	if err != nil {
		return err
	}
	for _, p := range pids {
		err := os.WriteFile(filepath.Join("/proc", strconv.Itoa(p), "clear_refs"), []byte("5"), 0)
		if err != nil && p == pid {
			return fmt.Errorf("reset peak RSS of %d: %w", pid, err)
		}
	}
	return nil
}
