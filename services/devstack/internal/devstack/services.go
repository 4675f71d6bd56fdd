package devstack

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Service is one child process of the dev stack.
type Service struct {
	// Name prefixes the service's output lines.
	Name string
	// Path is the executable.
	Path string
	// Args follow the executable on its command line.
	Args []string
	// Config is the service's config file, if it has one.
	Config string
}

// Discover returns the services to start: one per YAML file in configDir
// (name.yaml or name.yml), each run as binDir/name --config <file>, sorted by
// name. Adding a service to the dev stack is adding its config file.
func Discover(configDir, binDir string) ([]Service, error) {
	entries, err := os.ReadDir(configDir)
	if err != nil {
		return nil, fmt.Errorf("read service configs: %w", err)
	}
	configAbs, err := filepath.Abs(configDir)
	if err != nil {
		return nil, err
	}
	binAbs, err := filepath.Abs(binDir)
	if err != nil {
		return nil, err
	}
	var (
		svcs    []Service
		missing []string
		seen    = map[string]string{}
	)
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name := strings.TrimSuffix(e.Name(), ext)
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("service %s has two config files in %s: %s and %s", name, configDir, prev, e.Name())
		}
		seen[name] = e.Name()
		bin := filepath.Join(binAbs, name)
		if err := checkExecutable(bin); err != nil {
			missing = append(missing, fmt.Sprintf("%s (%v)", bin, err))
			continue
		}
		cfg := filepath.Join(configAbs, e.Name())
		svcs = append(svcs, Service{Name: name, Path: bin, Args: []string{"--config", cfg}, Config: cfg})
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("no executable for the services configured in %s: %s; run `make build` first", configDir, strings.Join(missing, ", "))
	}
	if len(svcs) == 0 {
		return nil, fmt.Errorf("no service configs (*.yaml) in %s", configDir)
	}
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	return svcs, nil
}

func checkExecutable(path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("not found")
	}
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}
