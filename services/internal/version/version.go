// Package version holds the version a service binary was built as. Release
// builds set it with the linker:
//
//	go build -ldflags "-X github.com/auditstream/auditstream/services/internal/version.Version=v1.2.3"
//
// The container images do this from the Dockerfile's VERSION build argument.
package version

// Version is the build's version; "dev" when the linker did not set it.
var Version = "dev"
