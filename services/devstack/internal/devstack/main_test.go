package devstack

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a child service instead of running
// the tests: its value picks the behaviour.
const helperEnv = "DEVSTACK_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperChild(mode))
	}
	os.Exit(m.Run())
}

// helperChild is a fake service:
//   - "serve": prints to stdout and stderr, then runs until SIGTERM.
//   - "crash": prints and exits 3 at once.
//   - "stubborn": like serve, but ignores SIGTERM.
func helperChild(mode string) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	fmt.Printf("hello from stdout brokers=%s args=%v\n", os.Getenv(EnvKafkaBrokers), os.Args[1:])
	fmt.Fprintf(os.Stderr, "hello from stderr\npartial line without newline")
	switch mode {
	case "serve":
		<-sigs
		fmt.Println("got SIGTERM, bye")
		return 0
	case "crash":
		return 3
	case "stubborn":
		for range sigs {
			fmt.Println("ignoring SIGTERM")
		}
	}
	time.Sleep(time.Hour) // an unknown mode hangs, as a stuck service would
	return 1
}
