package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// child is one process the demo started, with its output in a log file.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	log     *os.File
	done    chan struct{} // closed once the process exited and was reaped
	err     error         // Wait's result, valid after done
}

// spawner starts children from one goroutine locked to its OS thread. On
// Linux the parent-death signal fires when the thread that started a child
// exits, so all children are started from a thread that lives until the
// demo has stopped them.
type spawner struct {
	reqs chan spawnReq
	quit chan struct{}
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), quit: make(chan struct{})}
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		for {
			select {
			case r := <-s.reqs:
				r.errc <- r.cmd.Start()
			case <-s.quit:
				return
			}
		}
	}()
	return s
}

// close ends the spawner's thread. Call it only after every child was
// stopped: on Linux their parent-death signal fires when the thread ends.
func (s *spawner) close() { close(s.quit) }

// start runs bin with args, output appended to logPath (created or truncated).
func (s *spawner) start(name, bin string, args []string, logPath string) (*child, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = childSysProcAttr()
	fmt.Fprintf(f, "# %s %s\n", bin, strings.Join(args, " "))
	errc := make(chan error, 1)
	s.reqs <- spawnReq{cmd: cmd, errc: errc}
	if err := <-errc; err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, bin, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, log: f, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return c, nil
}

// exited reports whether the process has exited.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the child's process group, waits up to timeout, then
// sends SIGKILL and waits for it to be reaped.
func (c *child) stop(timeout time.Duration) error {
	if c.exited() {
		return nil
	}
	if err := terminateGroup(c.cmd.Process); err != nil && !errors.Is(err, os.ErrProcessDone) {
		killGroup(c.cmd.Process)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.done:
		return nil
	case <-t.C:
	}
	killGroup(c.cmd.Process)
	<-c.done
	return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", c.name, timeout)
}

// exitError describes how the child ended, with the tail of its log.
func (c *child) exitError() error {
	<-c.done
	return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", c.name, c.err, c.logPath, tailFile(c.logPath, 15))
}

// tailFile returns the last n lines of path, indented.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var sb strings.Builder
	for _, l := range lines {
		sb.WriteString("  ")
		sb.Write(l)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// waitDone waits for the child to exit or ctx to end.
func (c *child) waitDone(ctx context.Context) bool {
	select {
	case <-c.done:
		return true
	case <-ctx.Done():
		return false
	}
}
