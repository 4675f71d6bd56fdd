package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/objstore"
)

// docBlocks returns the fenced code blocks of a document with the given
// language.
func docBlocks(doc, lang string) []string {
	var out []string
	var cur *strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		switch {
		case cur == nil && line == "```"+lang:
			cur = &strings.Builder{}
		case cur != nil && line == "```":
			out = append(out, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return out
}

// The customer's recipe (docs/archive-verify.md) runs only commands that
// exist as written: every auditctl command line parses against the
// command's own flags, and every destinations file opens as a storage
// connection.
func TestArchiveVerifyRecipeCommands(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "docs", "archive-verify.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(body)
	commands := 0
	for _, block := range docBlocks(doc, "sh") {
		for _, line := range strings.Split(strings.ReplaceAll(block, "\\\n", " "), "\n") {
			line, _, _ = strings.Cut(line, " | ") // what is piped to is not auditctl's
			args := strings.Fields(line)
			if len(args) == 0 {
				continue
			}
			if args[0] != "auditctl" {
				t.Errorf("the recipe runs %q, which is not auditctl", line)
				continue
			}
			root := NewRootCommand(Env{})
			cmd, rest, err := root.Find(args[1:])
			if err != nil || cmd == root {
				t.Errorf("%q: no such command: %v", line, err)
				continue
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Errorf("%q: %v", line, err)
				continue
			}
			if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
				t.Errorf("%q: %v", line, err)
			}
			if cmd.CommandPath() != "auditctl archive verify" {
				t.Errorf("%q runs %s, want archive verify", line, cmd.CommandPath())
			}
			commands++
		}
	}
	files := 0
	for _, block := range docBlocks(doc, "yaml") {
		path := writeFile(t, "destinations.yaml", block)
		conns, err := storageConnections(path, "")
		if err != nil {
			t.Errorf("destinations file of the recipe:\n%s%v", block, err)
			continue
		}
		for _, c := range conns {
			if _, err := destinations.DecodeSettings[objstore.Settings](c); err != nil {
				t.Errorf("storage connection %s of the recipe: %v", c.Name, err)
			}
		}
		files++
	}
	// The recipe's verify, its JSON form and the one across a rotation;
	// a bucket and a copy of it on disk.
	if commands < 3 || files < 2 {
		t.Fatalf("found %d auditctl commands and %d destinations files in the recipe, want 3 and 2", commands, files)
	}
}
