package analysis

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// MemFile returns a new anonymous in-memory file (memfd_create with
// MFD_CLOEXEC): its bytes live in RAM only (swap aside, which a TEE's
// guest does not have), it has no name in any file system, and it vanishes
// when the last descriptor closes. name is a label for /proc only.
func MemFile(name string) (*os.File, error) {
	fd, err := unix.MemfdCreate("kura-"+name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("analysis: memfd_create: %w", err)
	}
	return os.NewFile(uintptr(fd), "memfd:kura-"+name), nil
}

// fdPath is the path through which DuckDB opens an open file.
func fdPath(f *os.File) string { return fmt.Sprintf("/proc/self/fd/%d", f.Fd()) }
