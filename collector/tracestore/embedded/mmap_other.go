//go:build !unix

package embedded

import "os"

// mapFile reads the file into memory where mapping is not available.
func mapFile(path string) ([]byte, func() error, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return data, func() error { return nil }, nil
}

func dropResident([]byte) {}
