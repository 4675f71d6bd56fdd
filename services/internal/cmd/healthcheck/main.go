// Command healthcheck is the container images' health probe: it GETs one URL
// and exits 0 on a 2xx answer, 1 otherwise. The images have no shell or curl;
// docker-compose health checks run it as
//
//	/healthcheck http://127.0.0.1:8080/readyz
//
// Kubernetes probes the same endpoints with httpGet and does not need it.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

func run(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: healthcheck URL")
		return 2
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		fmt.Fprintf(stderr, "healthcheck: %s answered %s\n", args[0], resp.Status)
		return 1
	}
	return 0
}
