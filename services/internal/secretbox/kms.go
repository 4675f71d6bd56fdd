package secretbox

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"go.uber.org/zap"

	"github.com/auditstream/auditstream/services/internal/awsauth"
)

// kmsRefresh is how often the key behind the configured key id is looked
// up again (DescribeKey), so an alias moved to a new key makes the values
// under the old one Stale within it.
const kmsRefresh = time.Minute

// kmsOptions are what tests replace.
type kmsOptions struct {
	chain *awsauth.DefaultChain
	now   func() time.Time
}

var sharedKMSChain = awsauth.NewDefaultChain()

// kmsKEK wraps data keys with an AWS KMS key: GenerateDataKey (AES_256)
// and Decrypt, the Context as the encryption context, so KMS itself
// refuses a data key asked for under another context (and CloudTrail
// shows which account's secret was opened).
type kmsKEK struct {
	client  *kms.Client
	keyID   string // as configured: ARN, alias or id
	timeout time.Duration
	log     *zap.Logger
	now     func() time.Time

	mu          sync.Mutex
	current     string // the key ARN keyID resolves to, once known
	describedAt time.Time
	refreshing  bool
}

func newKMS(ctx context.Context, c KMSConfig, log *zap.Logger, opts kmsOptions) (*kmsKEK, error) {
	if opts.chain == nil {
		opts.chain = sharedKMSChain
	}
	if opts.now == nil {
		opts.now = time.Now
	}
	base, err := awsauth.BaseConfig(c.Credentials, opts.chain)
	if err != nil {
		return nil, fmt.Errorf("kms: %w", err)
	}
	base.Region = c.Region
	base.HTTPClient = awshttp.NewBuildableClient()
	creds, err := awsauth.Provider(c.Credentials, base, opts.now)
	if err != nil {
		return nil, fmt.Errorf("kms: %w", err)
	}
	base.Credentials = creds
	client := kms.NewFromConfig(base, func(o *kms.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		// A few quick tries inside the call's timeout; a caller that still
		// gets ErrUnavailable retries its own work later.
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = c.MaxAttempts
			so.MaxBackoff = 2 * time.Second
		})
	})
	k := &kmsKEK{client: client, keyID: c.KeyID, timeout: c.Timeout, log: log, now: opts.now}
	arn, err := k.describe(ctx)
	switch {
	case err == nil:
		k.current, k.describedAt = arn, k.now()
		log.Info("kms key described", zap.String("kms_key_id", c.KeyID), zap.String("kms_key_arn", arn))
	case errors.Is(err, ErrUnavailable):
		log.Warn("kms key not described yet; retried at its first use", zap.String("kms_key_id", c.KeyID), zap.Error(err))
	default:
		return nil, err
	}
	return k, nil
}

// describe returns the ARN of the key keyID names, if it is enabled.
func (k *kmsKEK) describe(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	out, err := k.client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(k.keyID)})
	if err != nil {
		return "", kmsError("DescribeKey", k.keyID, err)
	}
	md := out.KeyMetadata
	if md == nil || md.Arn == nil {
		return "", fmt.Errorf("kms DescribeKey %q: answer without the key's ARN: %w", short(k.keyID), ErrUnavailable)
	}
	if !md.Enabled || md.KeyUsage != types.KeyUsageTypeEncryptDecrypt {
		return "", fmt.Errorf("kms key %q (%s) is %s with usage %s, want an enabled ENCRYPT_DECRYPT key: %w",
			short(k.keyID), *md.Arn, md.KeyState, md.KeyUsage, ErrUnknownKey)
	}
	return *md.Arn, nil
}

// CurrentKeyID is the ARN of the key new data keys are generated under:
// as DescribeKey or the last GenerateDataKey said, looked up again every
// kmsRefresh; the configured id until it is known.
func (k *kmsKEK) CurrentKeyID() string {
	k.mu.Lock()
	cur, due := k.current, !k.refreshing && k.now().Sub(k.describedAt) >= kmsRefresh
	if due {
		k.refreshing = true
	}
	k.mu.Unlock()
	if !due {
		if cur == "" {
			return k.keyID
		}
		return cur
	}
	arn, err := k.describe(context.Background())
	k.mu.Lock()
	defer k.mu.Unlock()
	k.refreshing = false
	if err != nil {
		// Known until KMS answers again; a wrong "not stale" only delays
		// a re-wrap.
		k.log.Warn("kms key not described", zap.String("kms_key_id", k.keyID), zap.Error(err))
		k.describedAt = k.now()
	} else {
		k.current, k.describedAt = arn, k.now()
	}
	if k.current == "" {
		return k.keyID
	}
	return k.current
}

// NewDataKey asks KMS for an AES-256 data key under the configured key.
func (k *kmsKEK) NewDataKey(ctx context.Context, c Context) (string, []byte, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	out, err := k.client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{
		KeyId:             aws.String(k.keyID),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: c,
	})
	if err != nil {
		return "", nil, nil, kmsError("GenerateDataKey", k.keyID, err)
	}
	if out.KeyId == nil || len(out.Plaintext) != DataKeyBytes || len(out.CiphertextBlob) == 0 {
		clear(out.Plaintext)
		return "", nil, nil, fmt.Errorf("kms GenerateDataKey %q: answer without a %d-byte data key, its blob and key id: %w", short(k.keyID), DataKeyBytes, ErrUnavailable)
	}
	k.mu.Lock()
	if k.current != *out.KeyId {
		k.current, k.describedAt = *out.KeyId, k.now()
	}
	k.mu.Unlock()
	return *out.KeyId, out.Plaintext, out.CiphertextBlob, nil
}

// Unwrap asks KMS to decrypt the data key, naming the key (so a blob of
// another key is refused) and the encryption context.
func (k *kmsKEK) Unwrap(ctx context.Context, keyID string, wrapped []byte, c Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	out, err := k.client.Decrypt(ctx, &kms.DecryptInput{
		CiphertextBlob:    wrapped,
		KeyId:             aws.String(keyID),
		EncryptionContext: c,
	})
	if err != nil {
		return nil, kmsError("Decrypt", keyID, err)
	}
	return out.Plaintext, nil
}

// KMS error codes by class.
var (
	kmsUnknownKey = map[string]bool{
		"NotFoundException": true, "DisabledException": true, "InvalidKeyUsageException": true,
		"KMSInvalidStateException": true, "InvalidArnException": true, "AccessDeniedException": true,
	}
	kmsTampered = map[string]bool{
		"InvalidCiphertextException": true, "IncorrectKeyException": true,
	}
	kmsUnavailable = map[string]bool{
		"ThrottlingException": true, "KMSInternalException": true, "DependencyTimeoutException": true,
		"KeyUnavailableException": true, "RequestTimeout": true, "ServiceUnavailable": true,
	}
)

// kmsError names the call and the key and classifies KMS's answer. KMS's
// messages name keys and ARNs, never a plaintext or a blob's content.
func kmsError(op, keyID string, err error) error {
	var se *awsauth.SecretError
	if errors.As(err, &se) {
		return fmt.Errorf("kms %s with key %q: %w", op, short(keyID), se)
	}
	status := 0
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		if status >= 400 && status < 500 && status != http.StatusTooManyRequests && status != http.StatusRequestTimeout {
			return fmt.Errorf("kms %s with key %q: HTTP %d: %w", op, short(keyID), status, unwrapOp(err))
		}
		// No answer (network, timeout) or a 5xx: retryable.
		return fmt.Errorf("kms %s with key %q: %w: %w", op, short(keyID), ErrUnavailable, unwrapOp(err))
	}
	code := ae.ErrorCode()
	msg := fmt.Sprintf("kms %s with key %q: HTTP %d %s: %s", op, short(keyID), status, code, shortMsg(ae.ErrorMessage()))
	switch {
	case kmsUnknownKey[code]:
		return fmt.Errorf("%s: %w", msg, ErrUnknownKey)
	case kmsTampered[code]:
		return fmt.Errorf("%s: %w", msg, ErrTampered)
	case kmsUnavailable[code], status >= 500, status == http.StatusTooManyRequests:
		return fmt.Errorf("%s: %w", msg, ErrUnavailable)
	}
	return errors.New(msg)
}

// unwrapOp drops the SDK's "operation error KMS: Decrypt," wrapper.
func unwrapOp(err error) error {
	var oe *smithy.OperationError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

func shortMsg(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
