package azuritetest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBinary(t *testing.T) {
	// From a directory with no .tools above it and no override: a clear
	// error, never a silent skip.
	t.Setenv(EnvBinary, "")
	t.Chdir(t.TempDir())
	if _, err := Binary(); err == nil || !strings.Contains(err.Error(), "run make tools") {
		t.Fatalf("without azurite: %v", err)
	}

	// Found in a parent directory.
	root := t.TempDir()
	bin := filepath.Join(root, toolPath)
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(root, "services", "internal", "objstore")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(sub)
	if got, err := Binary(); err != nil || got != bin {
		t.Fatalf("got %q %v, want %q", got, err, bin)
	}

	// The override wins, and must exist.
	t.Setenv(EnvBinary, filepath.Join(root, "elsewhere"))
	if _, err := Binary(); err == nil || !strings.Contains(err.Error(), EnvBinary) {
		t.Fatalf("missing override: %v", err)
	}
	t.Setenv(EnvBinary, bin)
	if got, err := Binary(); err != nil || got != bin {
		t.Fatalf("override: %q %v", got, err)
	}
}
