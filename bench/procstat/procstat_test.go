package procstat

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, in string
		want     stat
		wantErr  bool
	}{
		{"plain", "42 (nginx) S 7 42 42 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 1 0 1 1 1", stat{ppid: 7, utime: 150, stime: 25}, false},
		{"name with spaces and parens", "9 (a (b) c) R 1 9 9 0 -1 0 0 0 0 0 3 4 0 0", stat{ppid: 1, utime: 3, stime: 4}, false},
		{"truncated", "9 (x) R 1 9", stat{}, true},
		{"no name", "garbage", stat{}, true},
	}
	for _, tt := range tests {
		got, err := parseStat([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: got %+v, %v; want %+v (err %v)", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestStatusValue(t *testing.T) {
	in := []byte("Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t 1024 kB\n")
	if v, err := statusValue(in, "VmHWM:"); err != nil || v != 2048*1024 {
		t.Errorf("VmHWM = %d, %v", v, err)
	}
	if _, err := statusValue(in, "VmSwap:"); err == nil || !strings.Contains(err.Error(), "VmSwap") {
		t.Errorf("missing key err = %v", err)
	}
}

func TestTreeOfLiveProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	cmd := exec.Command("sh", "-c", "sleep 30 & sleep 30; wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Skip("no sh:", err)
	}
	defer func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() }()
	pid := cmd.Process.Pid
	var pids []int
	for i := 0; i < 200 && len(pids) < 3; i++ {
		var err error
		if pids, err = Tree(pid); err != nil {
			t.Fatal(err)
		}
		if len(pids) < 3 {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if len(pids) < 3 || pids[0] != pid {
		t.Fatalf("Tree(%d) = %v, want the shell and its two sleeps", pid, pids)
	}
	if rss, err := PeakRSS(pid); err != nil || rss == 0 {
		t.Errorf("PeakRSS = %d, %v", rss, err)
	}
	if _, err := CPUTime(pid); err != nil {
		t.Errorf("CPUTime: %v", err)
	}
	if err := ResetPeakRSS(pid); err != nil {
		t.Logf("ResetPeakRSS not permitted here: %v", err)
	}
	if _, err := CPUTime(1 << 30); err == nil {
		t.Error("CPUTime of a missing process should fail")
	}
}
