package deploytest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const versionVar = "github.com/auditstream/auditstream/services/internal/version.Version"

// TestDockerfile checks the one Dockerfile every image is built from: a
// static, trimmed binary with the version linked in, on a distroless (or
// scratch) base, as a numeric non-root user, with the health probe.
func TestDockerfile(t *testing.T) {
	df := string(readRepoFile(t, "Dockerfile"))
	for _, want := range []string{
		"ARG SERVICE\n",
		"CGO_ENABLED=0",
		"GOWORK=off",
		"go build -trimpath",
		"-X " + versionVar + "=${VERSION}",
		`test -f "services/${SERVICE}/main.go"`,
		"./cmd/healthcheck",
		"COPY --from=build /out/service /service\n",
		"COPY --from=build /out/healthcheck /healthcheck\n",
		"COPY --from=build --chown=65532:65532 /out/spool /var/lib/auditstream/spool\n",
		`ENTRYPOINT ["/service"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	runtime := regexp.MustCompile(`(?m)^ARG RUNTIME_IMAGE=(\S+)$`).FindStringSubmatch(df)
	if runtime == nil || !(strings.HasPrefix(runtime[1], "gcr.io/distroless/static") || runtime[1] == "scratch") {
		t.Errorf("runtime image %v: want distroless static or scratch", runtime)
	}
	// The last stage runs as a numeric non-root user, so Kubernetes'
	// runAsNonRoot can verify it.
	stages := strings.Split(df, "\nFROM ")
	last := stages[len(stages)-1]
	user := regexp.MustCompile(`(?m)^USER (\d+):(\d+)$`).FindStringSubmatch(last)
	if user == nil || user[1] == "0" {
		t.Errorf("the runtime stage's USER %v is not a numeric non-root user", user)
	} else if user[1] != "65532" {
		t.Errorf("USER %s: the chart and compose run as 65532", user[1])
	}
	if !strings.HasPrefix(last, "${RUNTIME_IMAGE}") {
		t.Errorf("the last stage is not FROM ${RUNTIME_IMAGE}")
	}

	// The -X target exists: a string variable in the version package.
	versionFile := filepath.Join(repoRoot(t), "services", "internal", "version", "version.go")
	f, err := parser.ParseFile(token.NewFileSet(), versionFile, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for _, name := range vs.Names {
				found = found || name.Name == "Version"
			}
		}
		return true
	})
	if !found {
		t.Errorf("%s does not declare var Version, the Dockerfile's -X target", versionFile)
	}
}

// TestDockerignore: the build context holds the workspace's modules and
// nothing the build does not need.
func TestDockerignore(t *testing.T) {
	di := string(readRepoFile(t, ".dockerignore"))
	lines := strings.Split(di, "\n")
	has := func(l string) bool {
		for _, x := range lines {
			if strings.TrimSpace(x) == l {
				return true
			}
		}
		return false
	}
	for _, want := range []string{"*", "!go.work", "!go.work.sum", "!proto/", "!services/"} {
		if !has(want) {
			t.Errorf(".dockerignore lacks %q", want)
		}
	}
}

// testOnlyPackages are import path prefixes a service binary must not
// link: the test servers and harnesses live in services/testsupport so
// that an image carries none of them.
var testOnlyPackages = []string{
	"github.com/auditstream/auditstream/services/testsupport",
	"github.com/johannesboyne/gofakes3",
	"github.com/fsouza/fake-gcs-server",
	"github.com/google/pprof",
	"github.com/twmb/franz-go/pkg/kfake",
}

// TestServiceModulesBuildAlone: the Dockerfile builds each service with
// GOWORK=off from its own go.mod (with replace lines for proto/,
// services/internal and services/testsupport), so each must resolve without
// the workspace, and what it links holds no test server.
func TestServiceModulesBuildAlone(t *testing.T) {
	for _, c := range components {
		t.Run(c.Binary, func(t *testing.T) {
			cmd := exec.Command("go", "list", "-deps", "-test=false", ".")
			cmd.Dir = filepath.Join(repoRoot(t), "services", c.Binary)
			cmd.Env = append(os.Environ(), "GOWORK=off", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("GOWORK=off go list in services/%s (as the image build resolves it): %v\n%s", c.Binary, err, out)
			}
			for _, pkg := range strings.Fields(string(out)) {
				for _, prefix := range testOnlyPackages {
					if pkg == prefix || strings.HasPrefix(pkg, prefix+"/") {
						t.Errorf("services/%s links %s, which only tests may import", c.Binary, pkg)
					}
				}
			}
		})
	}
}

// TestVersionFlag: a binary linked with -X version.Version reports it.
func TestVersionFlag(t *testing.T) {
	for _, name := range []string{"ingest", "archiver", "destinations-api"} {
		out, err := exec.Command(serviceBinary(t, name), "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("%s --version: %v\n%s", name, err, out)
		}
		if got, want := strings.TrimSpace(string(out)), name+" version "+testVersion; got != want {
			t.Errorf("%s --version printed %q, want %q", name, got, want)
		}
	}
}
