package eventbridge

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/auditstream/auditstream/services/internal/config"
)

func TestDefaults(t *testing.T) {
	c := Config{Region: "eu-west-1"}.WithDefaults()
	if c.EventBus != "default" || c.Source != "auditstream.audit-log" || c.DetailType != "Audit Event" ||
		c.Timeout != 10*time.Second || c.MaxConcurrentCalls != 8 || c.Credentials.Mode() != ModeDefaultChain {
		t.Fatalf("defaults %+v", c)
	}
	if got := (Config{Region: "eu-west-1", Prefix: "scalr"}).WithDefaults().Source; got != "scalr.audit-log" {
		t.Errorf("source from prefix scalr: %q", got)
	}
	if got := (Config{Region: "eu-west-1", Prefix: "scalr", Source: "com.example.audit"}).WithDefaults().Source; got != "com.example.audit" {
		t.Errorf("explicit source: %q", got)
	}
	arn := Config{EventBus: "arn:aws:events:us-east-2:123456789012:event-bus/audit"}.WithDefaults()
	if arn.Region != "us-east-2" {
		t.Errorf("region from the bus ARN: %q", arn.Region)
	}
	if err := arn.Validate(); err != nil {
		t.Errorf("bus ARN alone: %v", err)
	}
	role := Config{Region: "eu-west-1", Credentials: Credentials{RoleARN: "arn:aws:iam::123456789012:role/writer"}}.WithDefaults()
	if role.Credentials.RoleSessionName != "auditstream-eventbridge" || role.Credentials.Duration != time.Hour ||
		role.Credentials.STSRegion != "eu-west-1" || role.Credentials.Mode() != ModeAssumeRole {
		t.Errorf("role defaults %+v", role.Credentials)
	}
}

func TestModes(t *testing.T) {
	keys := Credentials{AccessKeyID: config.SecretLiteral("a"), SecretAccessKey: config.SecretLiteral("b")}
	withRole := keys
	withRole.RoleARN = "arn:aws:iam::123456789012:role/writer"
	for _, c := range []struct {
		cr   Credentials
		want Mode
	}{
		{Credentials{}, ModeDefaultChain},
		{keys, ModeStatic},
		{Credentials{RoleARN: "arn:aws:iam::123456789012:role/writer"}, ModeAssumeRole},
		{withRole, ModeAssumeRoleFromKeys},
	} {
		if got := c.cr.Mode(); got != c.want {
			t.Errorf("%+v: mode %s, want %s", c.cr, got, c.want)
		}
	}
}

func TestValidate(t *testing.T) {
	role := "arn:aws:iam::123456789012:role/auditstream-writer"
	valid := []Config{
		{Region: "eu-west-1"},
		{Region: "us-gov-west-1", EventBus: "audit/prod.events_1"},
		{Region: "cn-north-1", EventBus: "arn:aws-cn:events:cn-north-1:123456789012:event-bus/audit"},
		{EventBus: "arn:aws-eusc:events:eusc-de-east-1:123456789012:event-bus/audit"},
		{EventBus: "arn:aws:events:ap-southeast-2:123456789012:event-bus/audit", Region: "ap-southeast-2"},
		{Region: "eu-west-1", Endpoint: "http://127.0.0.1:4010", Prefix: "scalr", DetailType: "Scalr Audit Log — événement", Timeout: time.Second, MaxConcurrentCalls: 64},
		{Region: "eu-west-1", Credentials: Credentials{AccessKeyID: config.SecretFile("/run/id"), SecretAccessKey: config.SecretFile("/run/key"), SessionToken: config.SecretEnv("TOKEN")}},
		{Region: "eu-west-1", Credentials: Credentials{RoleARN: role, ExternalID: config.SecretLiteral("ext-123"), Duration: 12 * time.Hour, RoleSessionName: "audit@acme"}},
		{Region: "eu-west-1", Credentials: Credentials{RoleARN: role, AccessKeyID: config.SecretLiteral("a"), SecretAccessKey: config.SecretLiteral("b"),
			STSRegion: "us-east-1", STSEndpoint: "https://vpce-1.sts.us-east-1.vpce.amazonaws.com"}},
	}
	for i, c := range valid {
		if err := c.Validate(); err != nil {
			t.Errorf("valid %d: %v", i, err)
		}
	}

	invalid := []struct {
		name string
		c    Config
		want []string
	}{
		{"no region", Config{}, []string{"region: must be set"}},
		{"bad region", Config{Region: "Europe"}, []string{"region:", "not an AWS region"}},
		{"region differs from ARN", Config{Region: "eu-west-1", EventBus: "arn:aws:events:us-east-1:123456789012:event-bus/a"}, []string{"region:", "differs"}},
		{"bad bus name", Config{Region: "eu-west-1", EventBus: "my bus!"}, []string{"event_bus:"}},
		{"bad bus ARN", Config{Region: "eu-west-1", EventBus: "arn:aws:sqs:eu-west-1:123456789012:queue"}, []string{"event_bus:", "not an event bus ARN"}},
		{"endpoint scheme", Config{Region: "eu-west-1", Endpoint: "ftp://x"}, []string{"endpoint:", "scheme"}},
		{"endpoint user", Config{Region: "eu-west-1", Endpoint: "https://user:pw@x"}, []string{"endpoint:", "credentials"}},
		{"aws source", Config{Region: "eu-west-1", Source: "aws.events"}, []string{"source:", "reserved"}},
		{"long detail type", Config{Region: "eu-west-1", DetailType: strings.Repeat("é", 129)}, []string{"detail_type:", "128"}},
		{"control in source", Config{Region: "eu-west-1", Source: "a\nb"}, []string{"source:", "control"}},
		{"bad prefix", Config{Region: "eu-west-1", Prefix: "Scalr"}, []string{"prefix:"}},
		{"negative timeout", Config{Region: "eu-west-1", Timeout: -time.Second}, []string{"timeout:"}},
		{"too many calls", Config{Region: "eu-west-1", MaxConcurrentCalls: 65}, []string{"max_concurrent_calls:"}},
		{"key without secret", Config{Region: "eu-west-1", Credentials: Credentials{AccessKeyID: config.SecretLiteral("a")}}, []string{"credentials.access_key_id:"}},
		{"token without keys", Config{Region: "eu-west-1", Credentials: Credentials{SessionToken: config.SecretLiteral("t")}}, []string{"credentials.session_token:"}},
		{"external id without role", Config{Region: "eu-west-1", Credentials: Credentials{ExternalID: config.SecretLiteral("x")}}, []string{"credentials.external_id: only applies with role_arn"}},
		{"bad role", Config{Region: "eu-west-1", Credentials: Credentials{RoleARN: "arn:aws:iam::12:user/x"}}, []string{"credentials.role_arn:"}},
		{"short duration", Config{Region: "eu-west-1", Credentials: Credentials{RoleARN: role, Duration: time.Minute}}, []string{"credentials.duration:"}},
		{"bad session name", Config{Region: "eu-west-1", Credentials: Credentials{RoleARN: role, RoleSessionName: "a b"}}, []string{"credentials.role_session_name:"}},
		{"bad sts endpoint", Config{Region: "eu-west-1", Credentials: Credentials{RoleARN: role, STSEndpoint: "sts"}}, []string{"credentials.sts_endpoint:"}},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			err := c.c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, err := New(c.c, Options{}); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

// Every problem is reported at once, and secret values are never quoted.
func TestValidateReportsAllAndNeverQuotesSecrets(t *testing.T) {
	c := Config{Region: "nowhere", EventBus: "a b", Source: "aws.x", MaxConcurrentCalls: -1,
		Credentials: Credentials{AccessKeyID: config.SecretLiteral(testKeyID), SessionToken: config.SecretLiteral(testSecret),
			ExternalID: config.SecretLiteral(testSecret)}}
	err := c.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{"region:", "event_bus:", "source:", "max_concurrent_calls:", "credentials.access_key_id:", "credentials.external_id:"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	printed := err.Error() + fmt.Sprintf("%v %+v %#v", c, c, c)
	for _, secret := range []string{testKeyID, testSecret} {
		if strings.Contains(printed, secret) {
			t.Fatalf("a secret was printed:\n%s", printed)
		}
	}
}
