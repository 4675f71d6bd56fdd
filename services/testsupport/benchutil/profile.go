package benchutil

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// ProfileEnv names a file the timed part of a throughput benchmark writes
// its CPU profile to. The go test -cpuprofile flag profiles the whole run,
// set-up (pre-loading the broker) included, which hides what the service
// under test costs.
const ProfileEnv = "AUDITSTREAM_BENCH_CPUPROFILE"

// StartTimedProfile starts a CPU profile into the file named by ProfileEnv,
// when it is set, and returns what stops it. Call it right after
// b.ResetTimer and the returned function right after b.StopTimer.
func StartTimedProfile() (stop func() error, err error) {
	path := os.Getenv(ProfileEnv)
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", ProfileEnv, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("start CPU profile into %s: %w", path, err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
