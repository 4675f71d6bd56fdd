// Command destinations-api lets account admins manage their audit-log
// destinations through a REST API.
package main

import "github.com/auditstream/auditstream/services/destinations-api/internal/api"

func main() { api.CommandLine.Main() }
