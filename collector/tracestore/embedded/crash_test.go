package embedded

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshscope/meshscope/collector/spans"
)

const crashEnv = "MESHSCOPE_TRACESTORE_CRASH_DIR"

// TestCrashHelper is the child process of TestCrashKill9: it ingests
// batches from several goroutines and prints "ack <trace id> <spans>" after
// each acknowledged write, until it is killed.
func TestCrashHelper(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("child process of TestCrashKill9")
	}
	s, err := New(Config{Dir: dir, SegmentBytes: 1 << 20, MaxBytes: 1 << 30}, nil, nil)
	if err != nil {
		fmt.Println("open error:", err)
		os.Exit(2)
	}
	fmt.Println("ready")
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	round := os.Getenv(crashEnv + "_ROUND")
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				var id spans.TraceID
				copy(id[:], fmt.Sprintf("%s%02d%012d", round, w, i))
				n := 1 + i%7
				batch := make([]spans.Span, n)
				now := time.Now().UnixNano()
				for j := range batch {
					batch[j] = spans.Span{TraceID: id, SpanID: spans.SpanID{byte(j + 1), 1, 2, 3, 4, 5, 6, 7}, Service: "crash", Name: "op",
						StartUnixNano: now, EndUnixNano: now + 1000, Attrs: []spans.Attr{spans.StringAttr("payload", strings.Repeat("x", 200))}}
				}
				if err := s.WriteSpans(context.Background(), batch); err != nil {
					fmt.Println("write error:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %s %d\n", id, n)
				out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestCrashKill9 kills a writing process with SIGKILL mid-ingest, twice
// (the second time after it recovered and appended to the torn segment),
// and checks that every acknowledged span is present after reopening.
func TestCrashKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	acked := map[spans.TraceID]int{}
	for round := range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.v=false")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, fmt.Sprintf("%s_ROUND=r%d", crashEnv, round))
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		n := 0
		killed := false
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "ack ") {
				var hexID string
				var k int
				if _, err := fmt.Sscanf(line, "ack %s %d", &hexID, &k); err != nil {
					t.Fatalf("bad line %q", line)
				}
				id, err := spans.ParseTraceID(hexID)
				if err != nil {
					t.Fatal(err)
				}
				acked[id] = k
				n++
				// Kill while writers are busy, after a few hundred acks.
				if n == 400+round*200 && !killed {
					cmd.Process.Signal(syscall.SIGKILL)
					killed = true
				}
			} else if strings.Contains(line, "error") {
				t.Fatalf("child: %s", line)
			}
		}
		cmd.Wait()
		if !killed {
			t.Fatalf("round %d: child exited before it was killed (after %d acks)", round, n)
		}
		s, err := New(Config{Dir: dir, SegmentBytes: 1 << 20, MaxBytes: 1 << 30}, nil, nil)
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		for id, k := range acked {
			got, err := s.Trace(context.Background(), id)
			if err != nil || len(got) != k {
				s.Close()
				t.Fatalf("round %d: acknowledged trace %s: got %d spans (%v), want %d", round, id, len(got), err, k)
			}
		}
		s.Close()
		t.Logf("round %d: %d acknowledged batches present after kill -9", round, len(acked))
	}
}
