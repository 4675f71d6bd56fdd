package eventbridge

import "github.com/auditstream/auditstream/services/internal/awsauth"

// The credentials are shared with every AWS connection type (see awsauth);
// these names keep the settings reading as one package.
type (
	// Credentials are how the calls are signed: the AWS default chain,
	// static keys from Secrets, or an assumed role.
	Credentials = awsauth.Credentials
	// Mode says how credentials are obtained.
	Mode = awsauth.Mode
	// DefaultChain loads the AWS default configuration once, when a
	// connection first needs it.
	DefaultChain = awsauth.DefaultChain
	// SecretError is a credential Secret that could not be read.
	SecretError = awsauth.SecretError
	// CredentialsError is a failure to obtain credentials, before any call
	// to EventBridge was made.
	CredentialsError = awsauth.CredentialsError
)

// Credential modes.
const (
	ModeDefaultChain       = awsauth.ModeDefaultChain
	ModeStatic             = awsauth.ModeStatic
	ModeAssumeRole         = awsauth.ModeAssumeRole
	ModeAssumeRoleFromKeys = awsauth.ModeAssumeRoleFromKeys
)

// NewDefaultChain returns a DefaultChain that loads lazily.
func NewDefaultChain() *DefaultChain { return awsauth.NewDefaultChain() }
