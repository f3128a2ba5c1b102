package jsonlog

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestAppendReplayAndTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.jsonl")
	f, torn, err := Open(path, nil)
	if err != nil || torn != 0 {
		t.Fatal(err, torn)
	}
	for i := range 3 {
		if err := f.Append(map[string]int{"n": i}); err != nil {
			t.Fatal(err)
		}
	}
	size := f.Size()
	f.Close()
	// A crash mid-write leaves a partial line.
	af, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	af.WriteString(`{"n":3,"trunc`)
	af.Close()

	var lines []string
	f, torn, err = Open(path, func(n int, line []byte) error {
		lines = append(lines, string(line))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if len(lines) != 3 || lines[2] != "{\"n\":2}\n" || torn != len(`{"n":3,"trunc`) || f.Size() != size {
		t.Fatalf("lines %q torn %d size %d/%d", lines, torn, f.Size(), size)
	}
	if err := f.Append(map[string]int{"n": 3}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n" {
		t.Fatalf("file after repair:\n%s", b)
	}
}

func TestReplayErrorStopsOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.jsonl")
	os.WriteFile(path, []byte("{}\n{}\n"), 0o600)
	bad := errors.New("damaged")
	_, _, err := Open(path, func(n int, _ []byte) error {
		if n == 2 {
			return bad
		}
		return nil
	})
	if !errors.Is(err, bad) {
		t.Fatalf("err = %v", err)
	}
}

func TestAppendUnencodable(t *testing.T) {
	f, _, err := Open(filepath.Join(t.TempDir(), "l"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Append(func() {}); err == nil || f.Size() != 0 {
		t.Fatalf("err %v size %d", err, f.Size())
	}
}
