package archiver

import (
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
)

func TestConfigFiles(t *testing.T) {
	for _, tc := range []struct {
		file    string
		wantErr []string // substrings; empty means valid
		valid   bool     // valid, with values other than valid.yaml's
	}{
		{file: "valid.yaml"},
		{file: "window-not-dividing-day.yaml", wantErr: []string{"archive.window", "divide 24h"}},
		{file: "everything-wrong.yaml", wantErr: []string{
			"archive.group", "archive.window", "archive.grace", "archive.late_flush_after", "archive.spool_dir",
			"archive.max_group_bytes", "archive.max_open_groups", "archive.upload_concurrency", "archive.storage_retry_for", "archive.commit_interval",
		}},
		{file: "unknown-key.yaml", wantErr: []string{"windw"}},
		{file: "bad-signing-key.yaml", wantErr: []string{"archive.signing_key"}},
		{file: "wrong-type.yaml", wantErr: []string{"line 4", "not a size"}},
		// 64 groups' commits outgrow Kafka's default offset.metadata.max.bytes
		{file: "open-groups-over-commit-metadata.yaml", wantErr: []string{"archive.offset_metadata_max_bytes", "offset.metadata.max.bytes", "max_open_groups"}},
		{file: "open-groups-with-larger-commit-metadata.yaml", valid: true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			cfg := DefaultConfig()
			err := config.Load("testdata/"+tc.file, nil, &cfg)
			if tc.valid {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				return
			}
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("valid config refused: %v", err)
				}
				if cfg.Archive.Grace != 2*time.Hour || cfg.Archive.MaxGroupBytes != 512<<20 || cfg.Archive.MaxOpenGroups != 16 {
					t.Fatalf("values not applied over defaults: %+v", cfg.Archive)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not mention %q:\n%v", want, err)
				}
			}
		})
	}
}

func TestConfigEnvOverrides(t *testing.T) {
	cfg := DefaultConfig()
	env := []string{"AUDITSTREAM_ARCHIVE_WINDOW=1h", "AUDITSTREAM_ARCHIVE_SPOOL_DIR=/spool", "AUDITSTREAM_DESTINATIONS_FILE=/d.yaml"}
	if err := config.Load("", env, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Archive.Window != time.Hour || cfg.Archive.SpoolDir != "/spool" {
		t.Fatalf("env not applied: %+v", cfg.Archive)
	}
	bad := DefaultConfig()
	if err := config.Load("", []string{"AUDITSTREAM_ARCHIVE_WINDOW=forever", "AUDITSTREAM_DESTINATIONS_FILE=/d.yaml"}, &bad); err == nil {
		t.Fatal("a bad duration in the environment was accepted")
	}
}

func TestSigningKeyNeverInErrors(t *testing.T) {
	const secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n"
	cfg := DefaultConfig()
	cfg.Destinations.File = "d.yaml"
	cfg.Archive.SigningKey = config.SecretLiteral(secret)
	err := cfg.Validate()
	if err == nil {
		t.Fatal("bad key accepted")
	}
	if strings.Contains(err.Error(), "c2VjcmV0") {
		t.Fatalf("error quotes the key: %v", err)
	}
}
