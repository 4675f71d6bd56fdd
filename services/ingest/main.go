// Command ingest is auditstream's front door for audit events.
package main

import "github.com/auditstream/auditstream/services/ingest/internal/ingest"

func main() { ingest.CommandLine.Main() }
