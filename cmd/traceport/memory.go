package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// The memory limit is process-wide policy: main reads it from the cgroup
// and hands it to the garbage collector and to the receiver's guards.

// memoryLimitFromCgroup returns the container's memory limit (cgroup v2, then
// v1), or 0 when there is none.
func memoryLimitFromCgroup() int64 {
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 || n >= 1<<62 { // v1 says "no limit" with a huge number
			return 0
		}
		return n
	}
	return 0
}

// setGoMemoryLimit makes the garbage collector keep the runtime's memory
// under 90% of limit (the rest is for what the runtime does not count, such
// as fragmentation, so the process's RSS stays under limit), unless
// GOMEMLIMIT is set in the environment (an operator's choice wins).
func setGoMemoryLimit(limit int64) {
	if limit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit / 10 * 9)
	}
}
