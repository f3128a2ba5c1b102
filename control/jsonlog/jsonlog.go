package jsonlog

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// MaxLine caps one line when replaying.
const MaxLine = 1 << 30

// File is an open JSON-lines file positioned at its end. Not safe for
// concurrent use: its owner serialises appends.
type File struct {
	f    *os.File
	path string
	size int64
}

// Open opens (creating) path and calls replay with every complete line,
// numbered from 1 (its '\n' included). An incomplete last line is cut off
// and its length returned as torn; a replay error stops the open.
func Open(path string, replay func(lineNo int, line []byte) error) (_ *File, torn int, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, 0, fmt.Errorf("opening %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
		}
	}()
	r := bufio.NewReaderSize(f, 1<<16)
	var off int64
	for lineNo := 1; ; lineNo++ {
		line, rerr := r.ReadBytes('\n')
		if errors.Is(rerr, io.EOF) {
			if len(line) > 0 {
				torn = len(line)
				if err := f.Truncate(off); err != nil {
					return nil, 0, fmt.Errorf("truncating %s: %w", path, err)
				}
			}
			break
		}
		if rerr != nil {
			return nil, 0, fmt.Errorf("reading %s: %w", path, rerr)
		}
		if len(line) > MaxLine {
			return nil, 0, fmt.Errorf("%s line %d: longer than %d bytes", path, lineNo, MaxLine)
		}
		if replay != nil {
			if err := replay(lineNo, line); err != nil {
				return nil, 0, err
			}
		}
		off += int64(len(line))
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", path, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return nil, 0, err
	}
	return &File{f: f, path: path, size: off}, torn, nil
}

// Append writes v as one line and fsyncs it.
func (l *File) Append(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding a line of %s: %w", l.path, err)
	}
	return l.AppendLine(append(b, '\n'))
}

// AppendLine writes one line (ending in '\n') and fsyncs it. On failure
// the partial line is cut off.
func (l *File) AppendLine(b []byte) error {
	if l.f == nil {
		return fmt.Errorf("%s is closed", l.path)
	}
	if _, err := l.f.Write(b); err != nil {
		return l.rewind(fmt.Errorf("writing %s: %w", l.path, err))
	}
	if err := l.f.Sync(); err != nil {
		return l.rewind(fmt.Errorf("syncing %s: %w", l.path, err))
	}
	l.size += int64(len(b))
	return nil
}

// rewind cuts the file back to its last acknowledged size.
func (l *File) rewind(err error) error {
	if terr := l.f.Truncate(l.size); terr == nil {
		_, _ = l.f.Seek(l.size, io.SeekStart)
	}
	return err
}

// Size is the bytes acknowledged so far.
func (l *File) Size() int64 { return l.size }

// Path is the file's path.
func (l *File) Path() string { return l.path }

// Close closes the file.
func (l *File) Close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// SyncDir fsyncs a directory so that files created in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// Journal is an append-only log of numbered JSON records that the servers
// of a cluster share (control/etcdstate.Journal): the audit log and the
// guard events use it instead of their files with --state-store etcd.
type Journal interface {
	// Append numbers a record (encode gets the number and answers the
	// record's JSON) and writes it durably, answering the number.
	Append(ctx context.Context, encode func(seq uint64) ([]byte, error)) (uint64, error)
	// Newest calls fn with the records numbered below before (0: all),
	// newest first, until fn answers false.
	Newest(ctx context.Context, before uint64, fn func(seq uint64, v []byte) bool) error
}
