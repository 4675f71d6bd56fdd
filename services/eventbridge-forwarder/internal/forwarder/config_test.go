package forwarder

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --check-config validates the forwarder's config and every EventBridge
// connection of the destinations file, reporting the setting's path and
// never a value.
func TestCheckConfig(t *testing.T) {
	const secretValue = "sk-check-config-never-printed"
	cases := []struct {
		name         string
		destinations string
		code         int
		want         []string
	}{
		{"no routes", "connections: {}\nroutes: []\n", 0, []string{"config is valid"}},
		{"valid", `
connections:
  eb-acme:
    type: eventbridge
    settings:
      event_bus: arn:aws:events:eu-west-1:111122223333:event-bus/audit
      prefix: scalr
      credentials:
        role_arn: arn:aws:iam::111122223333:role/auditstream-writer
        external_id: ` + secretValue + `
  dd-acme:
    type: datadog
    settings: {whatever: is not ours to check}
routes:
  - account: acc-123
    connections: [eb-acme, dd-acme]
`, 0, []string{"config is valid"}},
		{"bad region", `
connections:
  eb-acme:
    type: eventbridge
    settings:
      region: Europe
      credentials:
        access_key_id: AKID
        secret_access_key: ` + secretValue + `
`, 1, []string{"connections.eb-acme.settings.region", "not an AWS region"}},
		{"unknown key", `
connections:
  eb-acme:
    type: eventbridge
    settings:
      region: eu-west-1
      regoin: eu-west-2
`, 1, []string{"connections.eb-acme.settings.regoin", "unknown field"}},
		{"wrong type", `
connections:
  eb-acme:
    type: eventbridge
    settings:
      region: eu-west-1
      timeout: ` + secretValue + `
`, 1, []string{"connections.eb-acme.settings"}},
		{"half the keys", `
connections:
  eb-acme:
    type: eventbridge
    settings:
      region: eu-west-1
      credentials:
        secret_access_key: ` + secretValue + `
`, 1, []string{"connections.eb-acme.settings.credentials.access_key_id"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "destinations.yaml")
			if err := os.WriteFile(dest, []byte(c.destinations), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := filepath.Join(dir, "forwarder.yaml")
			if err := os.WriteFile(cfg, []byte("destinations:\n  file: "+dest+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			code := Execute(context.Background(), []string{"--config", cfg, "--check-config"}, nil, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != c.code {
				t.Fatalf("exit %d, want %d:\n%s", code, c.code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, secretValue) {
				t.Errorf("a secret value is printed:\n%s", out)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	cfg := DefaultConfig()
	if cfg.Delivery.Group != "auditstream-eventbridge" || cfg.Delivery.RetryTopic.Name != "audit.events.retry.eventbridge" ||
		cfg.HTTP.Addr != "127.0.0.1:8082" || Spec.Type != "eventbridge" {
		t.Fatalf("defaults: group %s, retry topic %s, addr %s, type %s", cfg.Delivery.Group, cfg.Delivery.RetryTopic.Name, cfg.HTTP.Addr, Spec.Type)
	}
}
