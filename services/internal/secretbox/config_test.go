package secretbox

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
)

func parseConfig(t *testing.T, yaml string) (Config, error) {
	t.Helper()
	var c Config
	err := config.Parse([]byte(yaml), &c)
	return c, err
}

func TestConfigValidate(t *testing.T) {
	valid := []string{
		"keyring_file: /etc/auditstream/keyring.yaml\n",
		"kms:\n  key_id: alias/auditstream\n  region: eu-west-1\n",
		"kms:\n  key_id: arn:aws:kms:us-east-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab\n",
		"kms:\n  key_id: arn:aws:kms:us-east-2:123456789012:alias/auditstream\n  region: us-east-2\n",
		"kms:\n  key_id: 1234abcd-12ab-34cd-56ef-1234567890ab\n  region: eu-central-1\n  endpoint: https://vpce-0a.kms.eu-central-1.vpce.amazonaws.com\n",
		"kms:\n  key_id: mrk-1234abcd12ab34cd56ef1234567890ab\n  region: eu-west-1\n  timeout: 3s\n  max_attempts: 10\n",
		"kms:\n  key_id: alias/a\n  region: eu-west-1\n  credentials:\n    access_key_id: {file: /run/id}\n    secret_access_key: {env: KMS_SECRET}\n",
		"kms:\n  key_id: alias/a\n  region: eu-west-1\n  credentials:\n    role_arn: arn:aws:iam::123456789012:role/auditstream-kms\n    external_id: ext-1\n",
	}
	for _, y := range valid {
		c, err := parseConfig(t, y)
		if err != nil {
			t.Fatalf("%s: %v", y, err)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("valid %q: %v", y, err)
		}
	}

	invalid := []struct {
		name, yaml string
		want       []string
	}{
		{"nothing", "{}\n", []string{"keyring_file: set keyring_file (a local keyring) or kms.key_id"}},
		{"both", "keyring_file: /k.yaml\nkms:\n  key_id: alias/a\n  region: eu-west-1\n", []string{"keyring_file: set only one of keyring_file and kms"}},
		{"kms without key", "kms:\n  region: eu-west-1\n", []string{"kms.key_id: must be set"}},
		{"bad key id", "kms:\n  key_id: my-key\n  region: eu-west-1\n", []string{`kms.key_id: "my-key" is not a KMS key ARN`}},
		{"not a kms ARN", "kms:\n  key_id: arn:aws:iam::123456789012:role/x\n  region: eu-west-1\n", []string{"kms.key_id: "}},
		{"no region", "kms:\n  key_id: alias/a\n", []string{"kms.region: must be set"}},
		{"bad region", "kms:\n  key_id: alias/a\n  region: europe\n", []string{`kms.region: "europe" is not an AWS region`}},
		{"region differs from ARN", "kms:\n  key_id: arn:aws:kms:us-east-2:123456789012:alias/a\n  region: eu-west-1\n", []string{`kms.region: "eu-west-1" differs from key_id's region "us-east-2"`}},
		{"bad endpoint", "kms:\n  key_id: alias/a\n  region: eu-west-1\n  endpoint: ftp://kms\n", []string{"kms.endpoint: ", "scheme must be http or https"}},
		{"negative timeout", "kms:\n  key_id: alias/a\n  region: eu-west-1\n  timeout: -1s\n", []string{"kms.timeout: must not be negative"}},
		{"attempts", "kms:\n  key_id: alias/a\n  region: eu-west-1\n  max_attempts: 11\n", []string{"kms.max_attempts: must be between 1 and 10"}},
		{"half the keys", "kms:\n  key_id: alias/a\n  region: eu-west-1\n  credentials:\n    access_key_id: AKID\n", []string{"kms.credentials.access_key_id: access_key_id and secret_access_key go together"}},
		{"several", "kms:\n  key_id: x\n  max_attempts: -1\n", []string{"kms.key_id", "kms.region", "kms.max_attempts"}},
	}
	for _, tc := range invalid {
		c, err := parseConfig(t, tc.yaml)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		err = c.Validate()
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q does not say %q", tc.name, err, w)
			}
		}
	}

	for name, y := range map[string]string{
		"unknown key":     "keyring_fil: /k.yaml\n",
		"unknown kms key": "kms:\n  keyid: alias/a\n",
	} {
		if _, err := parseConfig(t, y); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{KMS: KMSConfig{KeyID: "arn:aws:kms:us-east-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"}}.WithDefaults()
	if c.KMS.Region != "us-east-2" || c.KMS.Timeout != 10*time.Second || c.KMS.MaxAttempts != 3 {
		t.Fatalf("defaults %+v", c.KMS)
	}
	role := Config{KMS: KMSConfig{KeyID: "alias/a", Region: "eu-west-1"}}
	role.KMS.Credentials.RoleARN = "arn:aws:iam::123456789012:role/kms"
	if got := role.WithDefaults().KMS.Credentials.RoleSessionName; got != "auditstream-secretbox" {
		t.Fatalf("role session name %q", got)
	}
	if k := (Config{KeyringFile: "/k"}).WithDefaults().KMS; k != (KMSConfig{}) {
		t.Fatalf("a keyring config grew KMS defaults: %+v", k)
	}
}

func TestNewKEK(t *testing.T) {
	path := newKeyringFile(t, "k1")
	kek, err := NewKEK(context.Background(), Config{KeyringFile: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if kek.CurrentKeyID() != "k1" {
		t.Fatalf("current key %q", kek.CurrentKeyID())
	}
	if _, err := NewKEK(context.Background(), Config{}, nil); err == nil || !strings.Contains(err.Error(), "keyring_file") {
		t.Fatalf("empty config: %v", err)
	}
	if _, err := NewKEK(context.Background(), Config{KeyringFile: path + ".missing"}, nil); err == nil || !strings.Contains(err.Error(), path+".missing") {
		t.Fatalf("missing keyring file: %v", err)
	}
}
