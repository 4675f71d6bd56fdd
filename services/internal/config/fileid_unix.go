//go:build unix

package config

import (
	"os"
	"syscall"
)

// fileID identifies the file info describes, so a file replaced by another
// of the same size within the file system's timestamp granularity (a few
// milliseconds) is still told apart.
func fileID(info os.FileInfo) [2]uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return [2]uint64{uint64(st.Dev), uint64(st.Ino)}
	}
	return [2]uint64{}
}
