package kmsfake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
)

var cred = Key{AccessKeyID: "AKIDKMSFAKE", SecretAccessKey: "kmsfake-secret"}

func newServer(t *testing.T) (*Server, *kms.Client) {
	t.Helper()
	s := New("eu-west-1")
	t.Cleanup(s.Close)
	s.AddKey(cred)
	s.RequireKnownKeys(true)
	client := kms.New(kms.Options{
		Region:       "eu-west-1",
		BaseEndpoint: aws.String(s.URL()),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: cred.AccessKeyID, SecretAccessKey: cred.SecretAccessKey}, nil
		}),
		Retryer: aws.NopRetryer{},
	})
	return s, client
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// raw sends a request signed (when secret is set) for service and region.
func raw(t *testing.T, s *Server, target, contentType, body, service, region, secret string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL()+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Target", target)
	req.Header.Set("Content-Type", contentType)
	if secret != "" {
		sum := sha256.Sum256([]byte(body))
		err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: cred.AccessKeyID, SecretAccessKey: secret},
			req, hex.EncodeToString(sum[:]), service, region, time.Now())
		if err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Type string `json:"__type"`
	}
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, out.Type
}

func TestProtocol(t *testing.T) {
	s, _ := newServer(t)
	arn := s.CreateKey()
	body := `{"KeyId":"` + arn + `"}`
	for _, tc := range []struct {
		name, target, ctype, service, region, secret string
		status                                       int
		typ                                          string
	}{
		{"ok", "TrentService.DescribeKey", ContentType, "kms", "eu-west-1", cred.SecretAccessKey, 200, ""},
		{"unsigned", "TrentService.DescribeKey", ContentType, "kms", "eu-west-1", "", 403, "MissingAuthenticationTokenException"},
		{"wrong secret", "TrentService.DescribeKey", ContentType, "kms", "eu-west-1", "other", 403, "InvalidSignatureException"},
		{"other service", "TrentService.DescribeKey", ContentType, "events", "eu-west-1", cred.SecretAccessKey, 403, "InvalidSignatureException"},
		{"other region", "TrentService.DescribeKey", ContentType, "kms", "us-east-1", cred.SecretAccessKey, 403, "InvalidSignatureException"},
		{"unknown operation", "TrentService.CreateGrant", ContentType, "kms", "eu-west-1", cred.SecretAccessKey, 400, "UnknownOperationException"},
		{"other service's target", "AWSEvents.PutEvents", ContentType, "kms", "eu-west-1", cred.SecretAccessKey, 400, "UnknownOperationException"},
		{"content type", "TrentService.DescribeKey", "application/json", "kms", "eu-west-1", cred.SecretAccessKey, 400, "SerializationException"},
	} {
		status, typ := raw(t, s, tc.target, tc.ctype, body, tc.service, tc.region, tc.secret)
		if status != tc.status || typ != tc.typ {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, typ, tc.status, tc.typ)
		}
	}
	if status, typ := raw(t, s, "TrentService.DescribeKey", ContentType, `{"KeyId":"`+arn+`","Extra":1}`, "kms", "eu-west-1", cred.SecretAccessKey); status != 400 || typ != "SerializationException" {
		t.Errorf("unknown member: %d %s", status, typ)
	}
	// Only the authenticated calls are counted.
	if n := s.Calls(OpDescribeKey); n != 2 {
		t.Errorf("%d DescribeKey calls counted, want 2", n)
	}
}

func TestKeysAndBlobs(t *testing.T) {
	s, c := newServer(t)
	ctx := context.Background()
	k1 := s.CreateKey()
	k2 := s.CreateKey()
	if err := s.CreateAlias("alias/audit", k1); err != nil {
		t.Fatal(err)
	}
	ec := map[string]string{"account": "acc-1", "connection": "dd"}
	for _, id := range []string{k1, "alias/audit", s.AliasARN("alias/audit"), k1[strings.LastIndex(k1, "/")+1:]} {
		out, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256, EncryptionContext: ec})
		if err != nil {
			t.Fatalf("GenerateDataKey %s: %v", id, err)
		}
		if aws.ToString(out.KeyId) != k1 || len(out.Plaintext) != 32 || bytes.Contains(out.CiphertextBlob, out.Plaintext) {
			t.Fatalf("GenerateDataKey %s: key %s, %d bytes", id, aws.ToString(out.KeyId), len(out.Plaintext))
		}
		dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.CiphertextBlob, EncryptionContext: ec, KeyId: aws.String(id)})
		if err != nil || !bytes.Equal(dec.Plaintext, out.Plaintext) || aws.ToString(dec.KeyId) != k1 {
			t.Fatalf("Decrypt %s: %v", id, err)
		}
	}
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(k1), Plaintext: []byte("secret"), EncryptionContext: ec})
	if err != nil {
		t.Fatal(err)
	}
	// The encryption context and the key are bound to the blob.
	for name, in := range map[string]*kms.DecryptInput{
		"other context": {CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"account": "acc-2", "connection": "dd"}},
		"no context":    {CiphertextBlob: enc.CiphertextBlob},
		"flipped":       {CiphertextBlob: append(bytes.Clone(enc.CiphertextBlob[:len(enc.CiphertextBlob)-1]), enc.CiphertextBlob[len(enc.CiphertextBlob)-1]^1), EncryptionContext: ec},
		"garbage":       {CiphertextBlob: []byte("not a blob"), EncryptionContext: ec},
	} {
		if _, err := c.Decrypt(ctx, in); code(err) != "InvalidCiphertextException" {
			t.Errorf("%s: %v, want InvalidCiphertextException", name, err)
		}
	}
	if _, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec, KeyId: aws.String(k2)}); code(err) != "IncorrectKeyException" {
		t.Errorf("decrypt naming another key: %v", err)
	}
	for _, id := range []string{"alias/none", "arn:aws:kms:us-east-1:123456789012:key/" + k1[strings.LastIndex(k1, "/")+1:], "0000"} {
		if _, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("x")}); code(err) != "NotFoundException" {
			t.Errorf("encrypt under %s: %v, want NotFoundException", id, err)
		}
	}
	if _, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(k1), KeySpec: types.DataKeySpecAes256, NumberOfBytes: aws.Int32(32)}); code(err) != "ValidationException" {
		t.Errorf("both KeySpec and NumberOfBytes: %v", err)
	}

	// ReEncrypt moves the blob to k2, under a new context.
	ec2 := map[string]string{"account": "acc-1", "connection": "dd", "v": "2"}
	re, err := c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, SourceEncryptionContext: ec,
		DestinationKeyId: aws.String(k2), DestinationEncryptionContext: ec2})
	if err != nil || aws.ToString(re.KeyId) != k2 || aws.ToString(re.SourceKeyId) != k1 {
		t.Fatalf("ReEncrypt: %v", err)
	}
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: re.CiphertextBlob, EncryptionContext: ec2})
	if err != nil || string(dec.Plaintext) != "secret" {
		t.Fatalf("decrypt of the re-encrypted blob: %v", err)
	}

	// Disabled: refused for every use, still described.
	if err := s.DisableKey(k1); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ec}); code(err) != "DisabledException" {
		t.Errorf("decrypt under a disabled key: %v", err)
	}
	if _, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String("alias/audit"), KeySpec: types.DataKeySpecAes256}); code(err) != "DisabledException" {
		t.Errorf("data key under a disabled key: %v", err)
	}
	d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/audit")})
	if err != nil || d.KeyMetadata.Enabled || d.KeyMetadata.KeyState != types.KeyStateDisabled || aws.ToString(d.KeyMetadata.Arn) != k1 {
		t.Fatalf("describe a disabled key: %+v, %v", d, err)
	}

	// Scripted faults.
	s.Throttle(1)
	if _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(k2)}); code(err) != "ThrottlingException" {
		t.Errorf("throttled: %v", err)
	}
	s.FailNext(1, 500, "", "")
	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(k2)})
	var re2 interface{ HTTPStatusCode() int }
	if code(err) != "KMSInternalException" || !errors.As(err, &re2) || re2.HTTPStatusCode() != 500 {
		t.Errorf("500: %v", err)
	}
	if _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(k2)}); err != nil {
		t.Errorf("after the scripted faults: %v", err)
	}
}
