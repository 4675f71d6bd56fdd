// Package kmsfake is an in-process AWS KMS for tests: an HTTP server on
// 127.0.0.1 answering the AWS JSON 1.1 protocol (TrentService) for the
// calls envelope encryption makes, under the real service's contract, and
// scriptable to fail.
//
// What it enforces, in this order:
//  1. POST to / with X-Amz-Target TrentService.GenerateDataKey, Decrypt,
//     Encrypt, ReEncrypt or DescribeKey and Content-Type
//     application/x-amz-json-1.1: 400 UnknownOperationException or
//     SerializationException otherwise;
//  2. a SigV4 Authorization header for the service "kms" scoped to the
//     fake's region (ebfake.CheckAuth): 403 MissingAuthenticationToken,
//     IncompleteSignature or InvalidSignatureException otherwise; the
//     signature is verified for keys added with AddKey, and
//     RequireKnownKeys refuses other keys (400 UnrecognizedClientException);
//  3. scripted answers: FailNext and Throttle answer the next calls whole;
//  4. the body must be the operation's request, without unknown members:
//     400 SerializationException, or ValidationException for a missing or
//     out-of-range member;
//  5. key ids are key ids, key ARNs, alias names (alias/x) or alias ARNs of
//     the fake's region and account: 400 NotFoundException otherwise; a
//     disabled key answers 400 DisabledException (DescribeKey still
//     describes it);
//  6. a ciphertext blob names its key and is authenticated with the
//     encryption context it was made with: a Decrypt (or ReEncrypt) with
//     another context, or of altered bytes, answers 400
//     InvalidCiphertextException; with a KeyId that is not the blob's key,
//     400 IncorrectKeyException.
package kmsfake

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/auditstream/auditstream/services/testsupport/ebfake"
)

// Names of the protocol.
const (
	ContentType  = "application/x-amz-json-1.1"
	TargetPrefix = "TrentService."
	Account      = "123456789012"
	maxBodyBytes = 1 << 20
)

// Operations the fake answers.
const (
	OpGenerateDataKey = "GenerateDataKey"
	OpDecrypt         = "Decrypt"
	OpEncrypt         = "Encrypt"
	OpReEncrypt       = "ReEncrypt"
	OpDescribeKey     = "DescribeKey"
)

var operations = []string{OpGenerateDataKey, OpDecrypt, OpEncrypt, OpReEncrypt, OpDescribeKey}

// Key is a credential the fake knows (see ebfake.Key).
type Key = ebfake.Key

type kmsKey struct {
	id, arn string
	aead    cipher.AEAD
	enabled bool
	created time.Time
}

type scripted struct {
	status   int
	typ, msg string
}

// Server is the fake KMS. Its methods are safe for concurrent use.
type Server struct {
	srv    *httptest.Server
	region string
	now    func() time.Time

	mu       sync.Mutex
	keys     map[string]*kmsKey // by key id
	aliases  map[string]string  // alias/name -> key id
	creds    map[string]Key
	require  bool
	failNext []scripted
	calls    map[string]int // by operation, every call received
	ok       map[string]int // by operation, calls answered 200
}

// New starts a fake KMS of region on 127.0.0.1. Close it when done.
func New(region string) *Server {
	s := &Server{
		region:  region,
		now:     time.Now,
		keys:    map[string]*kmsKey{},
		aliases: map[string]string{},
		creds:   map[string]Key{},
		calls:   map[string]int{},
		ok:      map[string]int{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the fake's endpoint, for an endpoint override.
func (s *Server) URL() string { return s.srv.URL }

// Region is the fake's region.
func (s *Server) Region() string { return s.region }

// Close stops the server.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// CreateKey makes a new enabled symmetric key and returns its ARN.
func (s *Server) CreateKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	id := h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	var material [32]byte
	_, _ = rand.Read(material[:])
	block, _ := aes.NewCipher(material[:])
	aead, _ := cipher.NewGCM(block)
	k := &kmsKey{id: id, arn: s.keyARN(id), aead: aead, enabled: true, created: s.now()}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[id] = k
	return k.arn
}

func (s *Server) keyARN(id string) string {
	return "arn:aws:kms:" + s.region + ":" + Account + ":key/" + id
}

// AliasARN is the ARN of alias (alias/name) in the fake's region.
func (s *Server) AliasARN(alias string) string {
	return "arn:aws:kms:" + s.region + ":" + Account + ":" + alias
}

// CreateAlias points alias (alias/name) at the key keyID names, or moves
// it there when it exists (UpdateAlias).
func (s *Server) CreateAlias(alias, keyID string) error {
	if !strings.HasPrefix(alias, "alias/") || len(alias) == len("alias/") {
		return fmt.Errorf("alias %q must be alias/<name>", alias)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, _, _ := s.resolveLocked(keyID)
	if k == nil {
		return fmt.Errorf("no key %q", keyID)
	}
	s.aliases[alias] = k.id
	return nil
}

// DisableKey disables the key keyID names: its calls answer
// DisabledException.
func (s *Server) DisableKey(keyID string) error { return s.setEnabled(keyID, false) }

// EnableKey enables the key keyID names again.
func (s *Server) EnableKey(keyID string) error { return s.setEnabled(keyID, true) }

func (s *Server) setEnabled(keyID string, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, _, _ := s.resolveLocked(keyID)
	if k == nil {
		return fmt.Errorf("no key %q", keyID)
	}
	k.enabled = on
	return nil
}

// AddKey makes k a known credential: calls signed with it are verified.
func (s *Server) AddKey(k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.creds[k.AccessKeyID] = k
}

// RequireKnownKeys refuses calls signed with a credential AddKey did not
// add.
func (s *Server) RequireKnownKeys(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.require = on
}

func (s *Server) lookupCred(id string) (Key, bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.creds[id]
	return k, ok, s.require
}

// FailNext answers the next n calls (after authentication) with status and
// {"__type": typ, "message": msg}. An empty typ is KMSInternalException for
// a 5xx, else ValidationException.
func (s *Server) FailNext(n, status int, typ, msg string) {
	if typ == "" {
		typ = "ValidationException"
		if status >= 500 {
			typ = "KMSInternalException"
		}
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext = append(s.failNext, scripted{status, typ, msg})
	}
}

// Throttle answers the next n calls 400 ThrottlingException, as KMS does
// past the account's request quota.
func (s *Server) Throttle(n int) {
	s.FailNext(n, http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
}

// Calls is the number of calls of operation op received (answered or
// not) since New or Reset.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// OK is the number of calls of operation op answered 200.
func (s *Server) OK(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ok[op]
}

// Reset forgets the counts and scripts; keys, aliases and credentials
// stay.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = nil
	s.calls = map[string]int{}
	s.ok = map[string]int{}
}

// resolveLocked finds the key id names: a key id, key ARN, alias name or
// alias ARN of this region and account. It returns the key, or KMS's
// error type and message.
func (s *Server) resolveLocked(id string) (*kmsKey, string, string) {
	name := id
	if strings.HasPrefix(id, "arn:") {
		prefix := "arn:aws:kms:" + s.region + ":" + Account + ":"
		if !strings.HasPrefix(id, prefix) {
			return nil, "NotFoundException", "Invalid arn " + id
		}
		name = strings.TrimPrefix(id, prefix)
		if rest, ok := strings.CutPrefix(name, "key/"); ok {
			name = rest
		} else if !strings.HasPrefix(name, "alias/") {
			return nil, "NotFoundException", "Invalid arn " + id
		}
	}
	if strings.HasPrefix(name, "alias/") {
		kid, ok := s.aliases[name]
		if !ok {
			return nil, "NotFoundException", "Alias " + s.AliasARN(name) + " is not found."
		}
		name = kid
	}
	k, ok := s.keys[name]
	if !ok {
		return nil, "NotFoundException", "Key '" + s.keyARN(name) + "' does not exist"
	}
	return k, "", ""
}

// usable resolves id for a cryptographic operation: the key must exist and
// be enabled.
func (s *Server) usable(id string) (*kmsKey, *apiError) {
	if id == "" {
		return nil, validation("keyId")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, typ, msg := s.resolveLocked(id)
	if k == nil {
		return nil, &apiError{http.StatusBadRequest, typ, msg}
	}
	if !k.enabled {
		return nil, &apiError{http.StatusBadRequest, "DisabledException", k.arn + " is disabled."}
	}
	return k, nil
}

type apiError struct {
	status   int
	typ, msg string
}

func validation(member string) *apiError {
	return &apiError{http.StatusBadRequest, "ValidationException",
		"1 validation error detected: Value null at '" + member + "' failed to satisfy constraint: Member must not be null"}
}

// The ciphertext blob: magic, the key id's length and the key id, the
// nonce, then AES-256-GCM of the plaintext under the key, the blob's
// header and the encryption context as authenticated data.
const blobMagic = "KMSFAKE1"

func encodeContext(ec map[string]string) []byte {
	keys := make([]string, 0, len(ec))
	for k := range ec {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := binary.AppendUvarint(nil, uint64(len(keys)))
	for _, k := range keys {
		out = binary.AppendUvarint(out, uint64(len(k)))
		out = append(out, k...)
		out = binary.AppendUvarint(out, uint64(len(ec[k])))
		out = append(out, ec[k]...)
	}
	return out
}

func seal(k *kmsKey, plaintext []byte, ec map[string]string) []byte {
	blob := append([]byte(blobMagic), byte(len(k.id)))
	blob = append(blob, k.id...)
	header := len(blob)
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	blob = append(blob, nonce...)
	aad := append(bytes.Clone(blob[:header]), encodeContext(ec)...)
	return k.aead.Seal(blob, nonce, plaintext, aad)
}

// open decrypts a blob made by seal, with the request's key id when given
// (IncorrectKeyException when it is not the blob's key).
func (s *Server) open(blob []byte, ec map[string]string, keyID string) (*kmsKey, []byte, *apiError) {
	invalid := &apiError{http.StatusBadRequest, "InvalidCiphertextException", ""}
	if len(blob) < len(blobMagic)+1 || string(blob[:len(blobMagic)]) != blobMagic {
		return nil, nil, invalid
	}
	n := int(blob[len(blobMagic)])
	header := len(blobMagic) + 1 + n
	if len(blob) < header+12+16 {
		return nil, nil, invalid
	}
	s.mu.Lock()
	k, ok := s.keys[string(blob[len(blobMagic)+1:header])]
	var want *kmsKey
	var typ, msg string
	if keyID != "" {
		want, typ, msg = s.resolveLocked(keyID)
	}
	enabled := ok && k.enabled
	s.mu.Unlock()
	switch {
	case keyID != "" && want == nil:
		return nil, nil, &apiError{http.StatusBadRequest, typ, msg}
	case !ok:
		// A blob of no key this account holds cannot be authenticated.
		return nil, nil, invalid
	case want != nil && want != k:
		return nil, nil, &apiError{http.StatusBadRequest, "IncorrectKeyException",
			"The key ID in the request does not identify a CMK that can perform this operation."}
	case !enabled:
		return nil, nil, &apiError{http.StatusBadRequest, "DisabledException", k.arn + " is disabled."}
	}
	aad := append(bytes.Clone(blob[:header]), encodeContext(ec)...)
	pt, err := k.aead.Open(nil, blob[header:header+12], blob[header+12:], aad)
	if err != nil {
		return nil, nil, invalid
	}
	return k, pt, nil
}

// Requests, answers; unknown members are refused.
type (
	generateDataKeyRequest struct {
		KeyId             string            `json:"KeyId"`
		KeySpec           string            `json:"KeySpec"`
		NumberOfBytes     *int              `json:"NumberOfBytes"`
		EncryptionContext map[string]string `json:"EncryptionContext"`
		GrantTokens       []string          `json:"GrantTokens"`
		DryRun            bool              `json:"DryRun"`
	}
	decryptRequest struct {
		CiphertextBlob      []byte            `json:"CiphertextBlob"`
		KeyId               string            `json:"KeyId"`
		EncryptionContext   map[string]string `json:"EncryptionContext"`
		EncryptionAlgorithm string            `json:"EncryptionAlgorithm"`
		GrantTokens         []string          `json:"GrantTokens"`
		DryRun              bool              `json:"DryRun"`
	}
	encryptRequest struct {
		KeyId               string            `json:"KeyId"`
		Plaintext           []byte            `json:"Plaintext"`
		EncryptionContext   map[string]string `json:"EncryptionContext"`
		EncryptionAlgorithm string            `json:"EncryptionAlgorithm"`
		GrantTokens         []string          `json:"GrantTokens"`
		DryRun              bool              `json:"DryRun"`
	}
	reEncryptRequest struct {
		CiphertextBlob                 []byte            `json:"CiphertextBlob"`
		SourceKeyId                    string            `json:"SourceKeyId"`
		SourceEncryptionContext        map[string]string `json:"SourceEncryptionContext"`
		SourceEncryptionAlgorithm      string            `json:"SourceEncryptionAlgorithm"`
		DestinationKeyId               string            `json:"DestinationKeyId"`
		DestinationEncryptionContext   map[string]string `json:"DestinationEncryptionContext"`
		DestinationEncryptionAlgorithm string            `json:"DestinationEncryptionAlgorithm"`
		GrantTokens                    []string          `json:"GrantTokens"`
		DryRun                         bool              `json:"DryRun"`
	}
	describeKeyRequest struct {
		KeyId       string   `json:"KeyId"`
		GrantTokens []string `json:"GrantTokens"`
	}
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil || len(body) > maxBodyBytes {
		answerError(w, &apiError{http.StatusBadRequest, "SerializationException", "request body unreadable or too large"})
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		answerError(w, &apiError{http.StatusNotFound, "UnknownOperationException", "no such route"})
		return
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), TargetPrefix)
	if !ok || !slices.Contains(operations, op) {
		answerError(w, &apiError{http.StatusBadRequest, "UnknownOperationException", "unknown operation " + r.Header.Get("X-Amz-Target")})
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != ContentType {
		answerError(w, &apiError{http.StatusBadRequest, "SerializationException", "Content-Type must be " + ContentType})
		return
	}
	auth, status, typ, msg := ebfake.CheckAuth(r, body, "kms", s.now(), s.lookupCred)
	if status != 0 {
		answerError(w, &apiError{status, typ, msg})
		return
	}
	if auth.Region != s.region {
		answerError(w, &apiError{http.StatusForbidden, "InvalidSignatureException",
			"Credential should be scoped to a valid region, not '" + auth.Region + "'."})
		return
	}
	s.mu.Lock()
	s.calls[op]++
	var fail *scripted
	if len(s.failNext) > 0 {
		f := s.failNext[0]
		s.failNext = s.failNext[1:]
		fail = &f
	}
	s.mu.Unlock()
	if fail != nil {
		answerError(w, &apiError{fail.status, fail.typ, fail.msg})
		return
	}
	var out any
	var aerr *apiError
	switch op {
	case OpGenerateDataKey:
		var req generateDataKeyRequest
		if aerr = decode(body, &req); aerr == nil {
			out, aerr = s.generateDataKey(req)
		}
	case OpDecrypt:
		var req decryptRequest
		if aerr = decode(body, &req); aerr == nil {
			out, aerr = s.decrypt(req)
		}
	case OpEncrypt:
		var req encryptRequest
		if aerr = decode(body, &req); aerr == nil {
			out, aerr = s.encrypt(req)
		}
	case OpReEncrypt:
		var req reEncryptRequest
		if aerr = decode(body, &req); aerr == nil {
			out, aerr = s.reEncrypt(req)
		}
	case OpDescribeKey:
		var req describeKeyRequest
		if aerr = decode(body, &req); aerr == nil {
			out, aerr = s.describeKey(req)
		}
	}
	if aerr != nil {
		answerError(w, aerr)
		return
	}
	s.mu.Lock()
	s.ok[op]++
	s.mu.Unlock()
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Amzn-RequestId", requestID())
	_ = json.NewEncoder(w).Encode(out)
}

func decode(body []byte, dst any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return &apiError{http.StatusBadRequest, "SerializationException", "request body: " + err.Error()}
	}
	if dec.More() {
		return &apiError{http.StatusBadRequest, "SerializationException", "request body: more than one JSON value"}
	}
	return nil
}

func checkBlob(blob []byte) *apiError {
	switch {
	case blob == nil:
		return validation("ciphertextBlob")
	case len(blob) > 6144:
		return &apiError{http.StatusBadRequest, "ValidationException", "ciphertextBlob must be at most 6144 bytes"}
	}
	return nil
}

func (s *Server) generateDataKey(req generateDataKeyRequest) (any, *apiError) {
	n := 0
	switch {
	case req.KeySpec != "" && req.NumberOfBytes != nil:
		return nil, &apiError{http.StatusBadRequest, "ValidationException", "Please specify either number of bytes or key spec."}
	case req.KeySpec == "AES_256":
		n = 32
	case req.KeySpec == "AES_128":
		n = 16
	case req.KeySpec != "":
		return nil, &apiError{http.StatusBadRequest, "ValidationException", "1 validation error detected: Value '" + req.KeySpec + "' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]"}
	case req.NumberOfBytes == nil:
		return nil, &apiError{http.StatusBadRequest, "ValidationException", "Please specify either number of bytes or key spec."}
	case *req.NumberOfBytes < 1 || *req.NumberOfBytes > 1024:
		return nil, &apiError{http.StatusBadRequest, "ValidationException", "numberOfBytes must be between 1 and 1024"}
	default:
		n = *req.NumberOfBytes
	}
	k, aerr := s.usable(req.KeyId)
	if aerr != nil {
		return nil, aerr
	}
	if req.DryRun {
		return nil, &apiError{http.StatusBadRequest, "DryRunOperationException", "The request would have succeeded."}
	}
	pt := make([]byte, n)
	_, _ = rand.Read(pt)
	return map[string]any{"CiphertextBlob": seal(k, pt, req.EncryptionContext), "Plaintext": pt, "KeyId": k.arn}, nil
}

func (s *Server) decrypt(req decryptRequest) (any, *apiError) {
	if aerr := checkBlob(req.CiphertextBlob); aerr != nil {
		return nil, aerr
	}
	k, pt, aerr := s.open(req.CiphertextBlob, req.EncryptionContext, req.KeyId)
	if aerr != nil {
		return nil, aerr
	}
	if req.DryRun {
		return nil, &apiError{http.StatusBadRequest, "DryRunOperationException", "The request would have succeeded."}
	}
	return map[string]any{"KeyId": k.arn, "Plaintext": pt, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}, nil
}

func (s *Server) encrypt(req encryptRequest) (any, *apiError) {
	switch {
	case req.Plaintext == nil:
		return nil, validation("plaintext")
	case len(req.Plaintext) < 1 || len(req.Plaintext) > 4096:
		return nil, &apiError{http.StatusBadRequest, "ValidationException", "plaintext must be 1 to 4096 bytes"}
	}
	k, aerr := s.usable(req.KeyId)
	if aerr != nil {
		return nil, aerr
	}
	return map[string]any{"CiphertextBlob": seal(k, req.Plaintext, req.EncryptionContext), "KeyId": k.arn, "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}, nil
}

func (s *Server) reEncrypt(req reEncryptRequest) (any, *apiError) {
	if aerr := checkBlob(req.CiphertextBlob); aerr != nil {
		return nil, aerr
	}
	dst, aerr := s.usable(req.DestinationKeyId)
	if aerr != nil {
		if req.DestinationKeyId == "" {
			aerr = validation("destinationKeyId")
		}
		return nil, aerr
	}
	src, pt, aerr := s.open(req.CiphertextBlob, req.SourceEncryptionContext, req.SourceKeyId)
	if aerr != nil {
		return nil, aerr
	}
	return map[string]any{
		"CiphertextBlob": seal(dst, pt, req.DestinationEncryptionContext), "KeyId": dst.arn, "SourceKeyId": src.arn,
		"SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT", "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
	}, nil
}

func (s *Server) describeKey(req describeKeyRequest) (any, *apiError) {
	if req.KeyId == "" {
		return nil, validation("keyId")
	}
	s.mu.Lock()
	k, typ, msg := s.resolveLocked(req.KeyId)
	var md map[string]any
	if k != nil {
		state := "Enabled"
		if !k.enabled {
			state = "Disabled"
		}
		md = map[string]any{
			"AWSAccountId": Account, "KeyId": k.id, "Arn": k.arn, "CreationDate": float64(k.created.UnixMilli()) / 1000,
			"Enabled": k.enabled, "KeyState": state, "KeyUsage": "ENCRYPT_DECRYPT", "KeySpec": "SYMMETRIC_DEFAULT",
			"CustomerMasterKeySpec": "SYMMETRIC_DEFAULT", "EncryptionAlgorithms": []string{"SYMMETRIC_DEFAULT"},
			"KeyManager": "CUSTOMER", "Origin": "AWS_KMS", "MultiRegion": false, "Description": "",
		}
	}
	s.mu.Unlock()
	if k == nil {
		return nil, &apiError{http.StatusBadRequest, typ, msg}
	}
	return map[string]any{"KeyMetadata": md}, nil
}

func answerError(w http.ResponseWriter, e *apiError) {
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Amzn-RequestId", requestID())
	w.WriteHeader(e.status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": e.typ, "message": e.msg})
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
