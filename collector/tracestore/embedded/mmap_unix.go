//go:build unix

package embedded

import (
	"fmt"
	"os"
	"syscall"
)

// mapFile maps a file read-only. Its pages are the page cache's: they do
// not count in the Go heap and the kernel may drop them under pressure.
func mapFile(path string) ([]byte, func() error, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if st.Size() == 0 || st.Size() > 1<<40 {
		return nil, nil, fmt.Errorf("%s: %w: size %d", path, errIndex, st.Size())
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap %s: %w", path, err)
	}
	return data, func() error { return syscall.Munmap(data) }, nil
}

// dropResident tells the kernel the pages read while checking the file are
// not needed now (they stay in the page cache, out of the process's RSS).
func dropResident(data []byte) { _ = syscall.Madvise(data, syscall.MADV_DONTNEED) }
