// Command archiver writes audit events into daily, immutable, append-only
// objects in each account's bucket (S3, GCS, Azure Blob) or a directory.
package main

import "github.com/auditstream/auditstream/services/archiver/internal/archiver"

func main() { archiver.CommandLine.Main() }
