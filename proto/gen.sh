#!/usr/bin/env bash
# Regenerates the Go code for proto/auditlog/v1. Called by `make proto`,
# which installs the pinned plugins into .tools/bin first.
set -euo pipefail
cd "$(dirname "$0")"
rm -f auditlog/v1/*.pb.go auditlog/v1/auditlogv1connect/*.go
protoc -I . \
  --go_out=. --go_opt=paths=source_relative \
  --connect-go_out=. --connect-go_opt=paths=source_relative \
  auditlog/v1/*.proto
