package objstore

import (
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/auditstream/auditstream/services/internal/awsauth"
	"github.com/auditstream/auditstream/services/internal/config"
)

// Store kinds: the value of Settings.Kind.
const (
	KindS3    = "s3"
	KindGCS   = "gcs"
	KindAzure = "azure"
	KindLocal = "local"
)

// Kinds lists the store kinds.
var Kinds = []string{KindS3, KindGCS, KindAzure, KindLocal}

// Defaults and limits of the upload settings.
const (
	// DefaultPartSize is the default S3 part size and Azure block size, and
	// the body size above which they upload in parts.
	DefaultPartSize = 16 << 20
	// DefaultChunkSize is the default GCS resumable upload chunk.
	DefaultChunkSize = 16 << 20
	// DefaultUploadConcurrency is how many parts of one object are in
	// flight at once.
	DefaultUploadConcurrency = 4
	// MaxUploadConcurrency caps upload_concurrency.
	MaxUploadConcurrency = 32

	// S3's limits: parts of 5 MiB to 5 GiB (the last may be smaller),
	// PutObject up to 5 GiB.
	S3MinPartSize = 5 << 20
	S3MaxPartSize = 5 << 30
	// Azure's limits: blocks up to 4000 MiB, a single Put Blob up to 5000
	// MiB.
	AzureMaxBlockSize    = 4000 << 20
	AzureMaxSingleUpload = 5000 << 20
	// GCS resumable chunks are multiples of 256 KiB.
	GCSChunkQuantum = 256 << 10
	GCSMaxChunkSize = 1 << 30
)

// DefaultRoleSessionName names the archive's assumed-role sessions in the
// customer's CloudTrail.
const DefaultRoleSessionName = "auditstream-archive"

// Settings are the type-specific settings of a destinations connection of
// type storage: which kind of store, its block, and the prefix every key of
// the connection goes under.
//
//	kind: s3              # s3 | gcs | azure | local
//	prefix: audit/acme    # optional folder inside the bucket
//	s3: {region: eu-west-1, bucket: acme-audit}
//
// Only the block of the chosen kind may be given.
type Settings struct {
	Kind   string         `yaml:"kind"`
	Prefix string         `yaml:"prefix"`
	S3     *S3Settings    `yaml:"s3"`
	GCS    *GCSSettings   `yaml:"gcs"`
	Azure  *AzureSettings `yaml:"azure"`
	Local  *LocalSettings `yaml:"local"`
}

// S3Settings are an S3 bucket (or an S3-compatible store at Endpoint).
type S3Settings struct {
	Region string `yaml:"region"`
	Bucket string `yaml:"bucket"`
	// Endpoint replaces the regional endpoint (a VPC endpoint, MinIO,
	// tests): scheme, host and an optional port.
	Endpoint string `yaml:"endpoint"`
	// PathStyle addresses the bucket as a path (endpoint/bucket/key) rather
	// than a host name (bucket.endpoint/key); most S3-compatible stores
	// need it.
	PathStyle bool `yaml:"path_style"`
	// SSEKMSKeyID turns on SSE-KMS with this key (id, ARN or alias); empty
	// leaves the bucket's default encryption.
	SSEKMSKeyID string `yaml:"sse_kms_key_id"`
	// StorageClass of new objects (default the bucket's, STANDARD).
	StorageClass string `yaml:"storage_class"`
	// MultipartThreshold is the body size above which Create uploads in
	// parts (default 16 MiB).
	MultipartThreshold config.ByteSize `yaml:"multipart_threshold"`
	// PartSize of a multipart upload, 5 MiB to 5 GiB (default 16 MiB). It
	// grows for bodies that would need more than 10,000 parts.
	PartSize config.ByteSize `yaml:"part_size"`
	// UploadConcurrency is how many parts are in flight (default 4).
	UploadConcurrency int `yaml:"upload_concurrency"`
	// Credentials: the AWS default chain, static keys or an assumed role.
	Credentials awsauth.Credentials `yaml:"credentials"`
}

// GCSSettings are a Google Cloud Storage bucket.
type GCSSettings struct {
	Bucket string `yaml:"bucket"`
	// Endpoint replaces the storage API's (tests, private endpoints), e.g.
	// http://127.0.0.1:4443/storage/v1/. Without Credentials it is used
	// unauthenticated, as emulators expect.
	Endpoint string `yaml:"endpoint"`
	// Credentials is a credentials JSON file's content (a service account
	// key, an external account or an impersonated service account),
	// usually {file: /var/run/secrets/gcs/key.json}. Without it the
	// Application Default Credentials apply (workload identity).
	Credentials config.Secret `yaml:"credentials"`
	// ChunkSize of resumable uploads, a multiple of 256 KiB (default 16
	// MiB). Bodies up to it go in one request.
	ChunkSize config.ByteSize `yaml:"chunk_size"`
}

// AzureSettings are an Azure Blob Storage container.
type AzureSettings struct {
	// AccountURL is the blob endpoint: https://<account>.blob.core.windows.net,
	// or http://127.0.0.1:10000/devstoreaccount1 for Azurite.
	AccountURL string `yaml:"account_url"`
	Container  string `yaml:"container"`
	// SharedKey signs with the storage account's key.
	SharedKey *AzureSharedKey `yaml:"shared_key"`
	// SASToken is a container or account SAS (the query string, with or
	// without its leading "?"); it needs create, read and list permission.
	SASToken config.Secret `yaml:"sas_token"`
	// With neither SharedKey nor SASToken, DefaultAzureCredential applies
	// (environment, workload identity, managed identity, Azure CLI).

	// SingleUploadThreshold is the body size above which Create stages
	// blocks and commits them (default 16 MiB).
	SingleUploadThreshold config.ByteSize `yaml:"single_upload_threshold"`
	// BlockSize of a staged upload (default 16 MiB, at most 4000 MiB).
	BlockSize config.ByteSize `yaml:"block_size"`
	// UploadConcurrency is how many blocks are in flight (default 4).
	UploadConcurrency int `yaml:"upload_concurrency"`
}

// AzureSharedKey is a storage account's name and key.
type AzureSharedKey struct {
	AccountName string        `yaml:"account_name"`
	AccountKey  config.Secret `yaml:"account_key"`
}

// LocalSettings are a directory on a local or mounted file system.
type LocalSettings struct {
	Dir string `yaml:"dir"`
}

// WithDefaults returns s with every empty setting of its blocks set to its
// default. Blocks are copied, so s's are left as they were.
func (s Settings) WithDefaults() Settings {
	s.Kind = strings.TrimSpace(s.Kind)
	if s.S3 != nil {
		c := s.S3.WithDefaults()
		s.S3 = &c
	}
	if s.GCS != nil {
		c := s.GCS.WithDefaults()
		s.GCS = &c
	}
	if s.Azure != nil {
		c := s.Azure.WithDefaults()
		s.Azure = &c
	}
	if s.Local != nil {
		c := s.Local.WithDefaults()
		s.Local = &c
	}
	return s
}

// WithDefaults returns c with every empty setting set to its default.
func (c S3Settings) WithDefaults() S3Settings {
	c.Region = strings.TrimSpace(c.Region)
	c.Bucket = strings.TrimSpace(c.Bucket)
	c.Endpoint = strings.TrimSpace(c.Endpoint)
	if c.MultipartThreshold == 0 {
		c.MultipartThreshold = DefaultPartSize
	}
	if c.PartSize == 0 {
		c.PartSize = DefaultPartSize
	}
	if c.UploadConcurrency == 0 {
		c.UploadConcurrency = DefaultUploadConcurrency
	}
	c.Credentials = c.Credentials.WithDefaults(c.Region, DefaultRoleSessionName)
	return c
}

// WithDefaults returns c with every empty setting set to its default.
func (c GCSSettings) WithDefaults() GCSSettings {
	c.Bucket = strings.TrimSpace(c.Bucket)
	c.Endpoint = strings.TrimSpace(c.Endpoint)
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultChunkSize
	}
	return c
}

// WithDefaults returns c with every empty setting set to its default.
func (c AzureSettings) WithDefaults() AzureSettings {
	c.AccountURL = strings.TrimSpace(c.AccountURL)
	c.Container = strings.TrimSpace(c.Container)
	if c.SharedKey != nil {
		k := *c.SharedKey
		k.AccountName = strings.TrimSpace(k.AccountName)
		c.SharedKey = &k
	}
	if c.SingleUploadThreshold == 0 {
		c.SingleUploadThreshold = DefaultPartSize
	}
	if c.BlockSize == 0 {
		c.BlockSize = DefaultPartSize
	}
	if c.UploadConcurrency == 0 {
		c.UploadConcurrency = DefaultUploadConcurrency
	}
	return c
}

// WithDefaults returns c with its directory trimmed.
func (c LocalSettings) WithDefaults() LocalSettings {
	c.Dir = strings.TrimSpace(c.Dir)
	return c
}

// Validate reports every problem in the settings, with empty settings read
// as their defaults. Messages name settings and quote only values that
// cannot be secret.
func (s Settings) Validate() error {
	s = s.WithDefaults()
	var errs config.Errors
	switch {
	case s.Kind == "":
		errs.Addf("kind", "is required (one of %s)", strings.Join(Kinds, ", "))
	case !slices.Contains(Kinds, s.Kind):
		errs.Addf("kind", "%q is not one of %s", trunc(s.Kind), strings.Join(Kinds, ", "))
	}
	if err := ValidPrefix(s.Prefix); err != nil {
		errs.Addf("prefix", "%v", strings.TrimPrefix(err.Error(), ErrInvalidKey.Error()+": prefix "))
	}
	blocks := []struct {
		kind string
		set  bool
		err  func() error
	}{
		{KindS3, s.S3 != nil, func() error { return s.S3.Validate() }},
		{KindGCS, s.GCS != nil, func() error { return s.GCS.Validate() }},
		{KindAzure, s.Azure != nil, func() error { return s.Azure.Validate() }},
		{KindLocal, s.Local != nil, func() error { return s.Local.Validate() }},
	}
	for _, b := range blocks {
		switch {
		case b.kind == s.Kind && !b.set:
			errs.Addf(b.kind, "is required with kind %s", b.kind)
		case b.kind == s.Kind:
			errs.Add(b.kind, b.err())
		case b.set:
			errs.Addf(b.kind, "only applies with kind %s (kind is %q)", b.kind, trunc(s.Kind))
		}
	}
	return errs.Err()
}

var (
	// S3 general purpose bucket names; dots are allowed but not as an IP
	// address.
	s3BucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
	kmsKeyRe   = regexp.MustCompile(`^(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_-]{1,256}|alias/[A-Za-z0-9/_-]{1,256}|mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$`)
	// GCS bucket names: 3 to 63 characters, or up to 222 with dots (each
	// dot-separated part at most 63).
	gcsBucketRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$`)
	// Azure container names: 3 to 63 of a-z, 0-9 and single hyphens.
	azContainerRe = regexp.MustCompile(`^[a-z0-9](-?[a-z0-9])+$`)
	azAccountRe   = regexp.MustCompile(`^[a-z0-9]{3,24}$`)
)

// S3StorageClasses are the storage classes PutObject accepts. Objects in
// GLACIER and DEEP_ARCHIVE cannot be read back without a restore, which
// the archive's own checks need; prefer a lifecycle rule for those.
var S3StorageClasses = []string{
	"STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR",
	"GLACIER", "DEEP_ARCHIVE", "REDUCED_REDUNDANCY", "EXPRESS_ONEZONE",
}

// Validate reports every problem in the settings, read after WithDefaults.
func (c S3Settings) Validate() error {
	var errs config.Errors
	switch {
	case c.Region == "":
		errs.Addf("region", "is required (for example eu-west-1)")
	case !awsauth.ValidRegion(c.Region):
		errs.Addf("region", "%q is not an AWS region such as eu-west-1", trunc(c.Region))
	}
	switch {
	case c.Bucket == "":
		errs.Addf("bucket", "is required")
	case !s3BucketRe.MatchString(c.Bucket) || strings.Contains(c.Bucket, "..") || net.ParseIP(c.Bucket) != nil:
		errs.Addf("bucket", "%q is not an S3 bucket name (3 to 63 of a-z, 0-9, '.' and '-')", trunc(c.Bucket))
	}
	if c.Endpoint != "" {
		if err := awsauth.CheckEndpoint(c.Endpoint); err != nil {
			errs.Addf("endpoint", "%v", err)
		}
	}
	if c.SSEKMSKeyID != "" && !kmsKeyRe.MatchString(c.SSEKMSKeyID) {
		errs.Addf("sse_kms_key_id", "%q is not a KMS key id, key ARN, alias or alias ARN", trunc(c.SSEKMSKeyID))
	}
	if c.StorageClass != "" && !slices.Contains(S3StorageClasses, c.StorageClass) {
		errs.Addf("storage_class", "%q is not one of %s", trunc(c.StorageClass), strings.Join(S3StorageClasses, ", "))
	}
	if c.MultipartThreshold < 1 || c.MultipartThreshold > S3MaxPartSize {
		errs.Addf("multipart_threshold", "must be between 1 byte and 5GiB")
	}
	if c.PartSize < S3MinPartSize || c.PartSize > S3MaxPartSize {
		errs.Addf("part_size", "must be between 5MiB and 5GiB (S3's part size limits)")
	}
	checkConcurrency(&errs, c.UploadConcurrency)
	errs.Add("credentials", c.Credentials.Validate())
	return errs.Err()
}

// Validate reports every problem in the settings, read after WithDefaults.
func (c GCSSettings) Validate() error {
	var errs config.Errors
	switch {
	case c.Bucket == "":
		errs.Addf("bucket", "is required")
	case !validGCSBucket(c.Bucket):
		errs.Addf("bucket", "%q is not a GCS bucket name (3 to 63 of a-z, 0-9, '-', '_' and '.')", trunc(c.Bucket))
	}
	if c.Endpoint != "" {
		if err := checkURL(c.Endpoint); err != nil {
			errs.Addf("endpoint", "%v", err)
		}
	}
	if c.ChunkSize < GCSChunkQuantum || c.ChunkSize > GCSMaxChunkSize || c.ChunkSize%GCSChunkQuantum != 0 {
		errs.Addf("chunk_size", "must be a multiple of 256KiB between 256KiB and 1GiB")
	}
	return errs.Err()
}

func validGCSBucket(b string) bool {
	if !gcsBucketRe.MatchString(b) || strings.HasPrefix(b, "goog") || net.ParseIP(b) != nil {
		return false
	}
	if !strings.Contains(b, ".") {
		return len(b) <= 63
	}
	for part := range strings.SplitSeq(b, ".") {
		if part == "" || len(part) > 63 {
			return false
		}
	}
	return true
}

// Validate reports every problem in the settings, read after WithDefaults.
func (c AzureSettings) Validate() error {
	var errs config.Errors
	switch {
	case c.AccountURL == "":
		errs.Addf("account_url", "is required (https://<account>.blob.core.windows.net)")
	default:
		if err := checkURL(c.AccountURL); err != nil {
			errs.Addf("account_url", "%v", err)
		} else if c.SASToken.IsSet() && !secureOrLoopback(c.AccountURL) {
			errs.Addf("account_url", "must be https with sas_token (a SAS is a bearer token); http is for a loopback emulator only")
		}
	}
	switch {
	case c.Container == "":
		errs.Addf("container", "is required")
	case len(c.Container) < 3 || len(c.Container) > 63 || !azContainerRe.MatchString(c.Container):
		errs.Addf("container", "%q is not a container name (3 to 63 of a-z, 0-9 and single '-', starting and ending with a letter or digit)", trunc(c.Container))
	}
	if c.SharedKey != nil {
		if c.SASToken.IsSet() {
			errs.Addf("sas_token", "give one credential: shared_key or sas_token, not both")
		}
		switch {
		case c.SharedKey.AccountName == "":
			errs.Addf("shared_key.account_name", "is required")
		case !azAccountRe.MatchString(c.SharedKey.AccountName):
			errs.Addf("shared_key.account_name", "%q is not a storage account name (3 to 24 of a-z and 0-9)", trunc(c.SharedKey.AccountName))
		}
		if !c.SharedKey.AccountKey.IsSet() {
			errs.Addf("shared_key.account_key", "is required")
		}
	}
	if c.SingleUploadThreshold < 1 || c.SingleUploadThreshold > AzureMaxSingleUpload {
		errs.Addf("single_upload_threshold", "must be between 1 byte and 5000MiB")
	}
	if c.BlockSize < 1 || c.BlockSize > AzureMaxBlockSize {
		errs.Addf("block_size", "must be between 1 byte and 4000MiB")
	}
	checkConcurrency(&errs, c.UploadConcurrency)
	return errs.Err()
}

// Validate reports every problem in the settings, read after WithDefaults.
func (c LocalSettings) Validate() error {
	var errs config.Errors
	switch {
	case c.Dir == "":
		errs.Addf("dir", "is required")
	case strings.ContainsRune(c.Dir, 0):
		errs.Addf("dir", "must not hold a NUL byte")
	case filepath.Clean(c.Dir) == "/":
		errs.Addf("dir", "must not be the root directory")
	}
	return errs.Err()
}

func checkConcurrency(errs *config.Errors, n int) {
	if n < 1 || n > MaxUploadConcurrency {
		errs.Addf("upload_concurrency", "must be between 1 and %d", MaxUploadConcurrency)
	}
}

// checkURL checks an endpoint: http or https with a host, without
// credentials, query or fragment (a query could carry a SAS, which belongs
// in sas_token).
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("is not a URL")
	}
	var problems []string
	if u.Scheme != "http" && u.Scheme != "https" {
		problems = append(problems, "scheme must be http or https")
	}
	if u.Host == "" {
		problems = append(problems, "host is missing")
	}
	if u.User != nil {
		problems = append(problems, "must not hold credentials")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		problems = append(problems, "must not have a query or fragment (a SAS goes in sas_token)")
	}
	if len(problems) > 0 {
		// Only the scheme and host are quoted: the rest may be a secret.
		return fmt.Errorf("%s://%s: %s", u.Scheme, trunc(u.Host), strings.Join(problems, "; "))
	}
	return nil
}

// secureOrLoopback reports whether a URL is https or names a loopback host.
func secureOrLoopback(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
