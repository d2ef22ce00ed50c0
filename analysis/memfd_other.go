//go:build !linux

package analysis

import (
	"errors"
	"fmt"
	"os"
)

// MemFile returns an error: anonymous memory files need Linux
// (memfd_create), which every kura worker runs on.
func MemFile(name string) (*os.File, error) {
	return nil, errors.New("analysis: in-memory files need Linux (memfd_create)")
}

// fdPath is the path through which DuckDB opens an open file.
func fdPath(f *os.File) string { return fmt.Sprintf("/dev/fd/%d", f.Fd()) }
