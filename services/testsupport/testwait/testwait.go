// Package testwait waits in tests for an event that has no channel to
// receive from: a fake's count, a committed offset, a published version.
// The condition polled is the event itself, so a wait ends as soon as it
// happens and holds however slow the machine is.
package testwait

import (
	"testing"
	"time"
)

// Interval is how often Until checks its condition.
const Interval = 10 * time.Millisecond

// Until polls cond until it holds, failing t after timeout with what it
// waited for.
func Until(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(Interval)
	}
}
