//go:build !race

package forwardingtest

// raceBuild is set when the tests run under the race detector: the
// binaries they start are built with it too.
const raceBuild = false
