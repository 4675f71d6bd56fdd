package awsauth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
)

const role = "arn:aws:iam::123456789012:role/auditstream-writer"

func TestModesAndDefaults(t *testing.T) {
	keys := Credentials{AccessKeyID: config.SecretLiteral("a"), SecretAccessKey: config.SecretLiteral("b")}
	withRole := keys
	withRole.RoleARN = role
	for _, c := range []struct {
		cr      Credentials
		mode    Mode
		chained bool
	}{
		{Credentials{}, ModeDefaultChain, true},
		{keys, ModeStatic, false},
		{Credentials{RoleARN: role}, ModeAssumeRole, true},
		{withRole, ModeAssumeRoleFromKeys, false},
	} {
		if got := c.cr.Mode(); got != c.mode || c.cr.UsesDefaultChain() != c.chained {
			t.Errorf("%s: mode %s, default chain %v", c.mode, got, c.cr.UsesDefaultChain())
		}
	}
	d := Credentials{RoleARN: " " + role + " "}.WithDefaults("eu-west-1", "auditstream-test")
	if d.RoleARN != role || d.RoleSessionName != "auditstream-test" || d.Duration != time.Hour || d.STSRegion != "eu-west-1" {
		t.Errorf("role defaults %+v", d)
	}
	if d := keys.WithDefaults("eu-west-1", "x"); d.RoleSessionName != "" || d.Duration != 0 || d.STSRegion != "" {
		t.Errorf("defaults without a role %+v", d)
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		cr   Credentials
		want []string // empty: valid
	}{
		{"default chain", Credentials{}, nil},
		{"static", Credentials{AccessKeyID: config.SecretFile("/id"), SecretAccessKey: config.SecretEnv("KEY"), SessionToken: config.SecretLiteral("t")}, nil},
		{"role", Credentials{RoleARN: role, ExternalID: config.SecretLiteral("x")}.WithDefaults("eu-west-1", "auditstream-test"), nil},
		{"key without secret", Credentials{AccessKeyID: config.SecretLiteral("a")}, []string{"access_key_id:"}},
		{"token alone", Credentials{SessionToken: config.SecretLiteral("t")}, []string{"session_token:"}},
		{"role settings without a role", Credentials{ExternalID: config.SecretLiteral("x"), Duration: time.Hour, STSEndpoint: "http://x"},
			[]string{"external_id: only applies with role_arn", "duration: only applies", "sts_endpoint: only applies"}},
		{"bad role", Credentials{RoleARN: "arn:aws:iam::12:user/x"}.WithDefaults("eu-west-1", "s"), []string{"role_arn:", "role_session_name:"}},
		{"bad duration and sts", Credentials{RoleARN: role, Duration: time.Minute, STSRegion: "moon", STSEndpoint: "ftp://x"}.WithDefaults("eu-west-1", "ok-name"),
			[]string{"duration:", "sts_region:", "sts_endpoint:"}},
	}
	for _, c := range cases {
		err := c.cr.Validate()
		if len(c.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: valid", c.name)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", c.name, err, w)
			}
		}
	}
}

func TestCheckEndpoint(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://s3.eu-west-1.amazonaws.com": true,
		"http://127.0.0.1:9000":              true,
		"s3.amazonaws.com":                   false,
		"https://user:pw@host":               false,
		"https://host/?x=1":                  false,
		"https://":                           false,
		"%zz":                                false,
	} {
		err := CheckEndpoint(raw)
		if (err == nil) != ok {
			t.Errorf("%q: %v", raw, err)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("%q: error shows the password: %v", raw, err)
		}
	}
}

// Static keys are read from their files at retrieval; a missing file is a
// SecretError naming the file and never a value.
func TestStaticKeysFromFiles(t *testing.T) {
	dir := t.TempDir()
	id, key := filepath.Join(dir, "id"), filepath.Join(dir, "key")
	if err := os.WriteFile(id, []byte("AKIDEXAMPLE\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte("very-secret-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cr := Credentials{AccessKeyID: config.SecretFile(id), SecretAccessKey: config.SecretFile(key)}
	base, err := BaseConfig(cr, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A clock an hour behind makes every cached key stale at once.
	p, err := Provider(cr, base, func() time.Time { return time.Now().Add(-time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Retrieve(t.Context())
	if err != nil || got.AccessKeyID != "AKIDEXAMPLE" || got.SecretAccessKey != "very-secret-key" {
		t.Fatalf("retrieved %v %v", got.AccessKeyID, err)
	}
	os.Remove(key)
	_, err = p.Retrieve(t.Context())
	var se *SecretError
	var ce *CredentialsError
	if !errors.As(err, &se) || !errors.As(err, &ce) || !strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "very-secret-key") {
		t.Fatalf("missing key file: %v", err)
	}
}
