// Package deploytest checks the deployment artefacts at the repository root
// against what the services and the docs promise: docker-compose.yml (loaded
// with compose-go), the Dockerfile, and the Helm chart in charts/auditstream
// (rendered with helm from .tools/bin; `make tools` installs it). It has tests
// only.
package deploytest
