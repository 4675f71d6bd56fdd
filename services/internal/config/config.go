// Package config loads a service's configuration: defaults set in code, then
// a YAML file, then environment overrides, then one Validate that reports
// every problem at once.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment override: AUDITSTREAM_KAFKA_BROKERS sets
// kafka.brokers.
const EnvPrefix = "AUDITSTREAM_"

// MaxFileBytes bounds a config file; anything larger is a mistake.
const MaxFileBytes = 1 << 20

// Validator is a config section that can check itself.
type Validator interface{ Validate() error }

// Load fills dst, which holds the defaults, from the YAML file at path (none
// when path is empty), then from env (KEY=VALUE pairs, as os.Environ gives),
// then validates it. Unknown YAML keys and unknown AUDITSTREAM_ variables are
// errors, so a typo never silently leaves a default in place.
func Load(path string, env []string, dst Validator) error {
	if path != "" {
		if err := loadFile(path, dst); err != nil {
			return err
		}
	}
	if err := ApplyEnv(dst, env); err != nil {
		return err
	}
	if err := dst.Validate(); err != nil {
		return fmt.Errorf("invalid config: %w", err)
	}
	return nil
}

func loadFile(path string, dst any) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return fmt.Errorf("config %s is larger than %d bytes", path, MaxFileBytes)
	}
	return Parse(data, dst)
}

// Parse decodes YAML into dst over the values it already holds.
func Parse(data []byte, dst any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file keeps the defaults
		}
		return fmt.Errorf("parse config: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("parse config: more than one YAML document")
	}
	return nil
}

// Errors collects validation problems with the path of the field at fault.
type Errors struct{ errs []error }

// Addf records a problem with the field at path.
func (e *Errors) Addf(path, format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// Add records the errors of a nested section, prefixing them with its path.
func (e *Errors) Add(path string, err error) {
	if err == nil {
		return
	}
	for _, one := range Flatten(err) {
		e.errs = append(e.errs, fmt.Errorf("%s.%w", path, one))
	}
}

// Err returns all problems joined, or nil.
func (e *Errors) Err() error { return errors.Join(e.errs...) }

// Flatten lists the problems of an error that joins others (errors.Join,
// Errors.Err), at any depth; any other error is one problem.
func Flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, one := range j.Unwrap() {
			out = append(out, Flatten(one)...)
		}
		return out
	}
	return []error{err}
}

// EnvName is the environment variable that overrides the field at a dotted
// YAML path: "kafka.tls.ca_file" → AUDITSTREAM_KAFKA_TLS_CA_FILE.
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path))
}
