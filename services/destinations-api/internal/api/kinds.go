package api

import (
	"context"
	"net/netip"
	"net/url"
	"reflect"
	"slices"
	"strings"

	auditlogv1 "github.com/auditstream/auditstream/proto/auditlog/v1"
	"github.com/auditstream/auditstream/services/internal/awsauth"
	"github.com/auditstream/auditstream/services/internal/config"
	"github.com/auditstream/auditstream/services/internal/destinations"
	"github.com/auditstream/auditstream/services/internal/objstore"
	"github.com/auditstream/auditstream/services/internal/sink/datadog"
	"github.com/auditstream/auditstream/services/internal/sink/eventbridge"
	"github.com/auditstream/auditstream/services/internal/sink/otlp"
)

// kind is what the API knows of a connection type: the settings type the
// consumer of that type decodes (strictly, with its own Validate), which of
// its fields are secrets, and the rules that keep one account admin from
// using the platform's identity or network position.
type kind struct {
	typ        string
	collection string
	secrets    []string
	// check decodes and validates the settings exactly as the consumer of
	// the type does, then applies the API's rules.
	check func(c *destinations.Connection, s Settings) error
	// test proves the destination works now (see test.go): a connection
	// through its registered sink (testSink), a storage profile with a
	// marker object (testStorage).
	test func(ctx context.Context, c *destinations.Connection, ev *auditlogv1.AuditEvent) (testOutcome, error)
}

func newKind[T interface{ WithDefaults() T }](typ, collection string, rules func(T, Settings, *config.Errors)) *kind {
	test := testSink
	if collection == destinations.CollectionStorageProfiles {
		test = testStorage
	}
	return &kind{
		typ:        typ,
		collection: collection,
		test:       test,
		secrets:    destinations.SecretFields(reflect.TypeFor[T]()),
		check: func(c *destinations.Connection, s Settings) error {
			v, err := destinations.DecodeSettings[T](c)
			if err != nil {
				return err
			}
			var errs, out config.Errors
			rules(v, s, &errs)
			out.Add(c.SettingsPath(), errs.Err())
			return out.Err()
		},
	}
}

// connectionKinds are the types of connections; storageKind is the one
// type of storage profiles.
var (
	connectionKinds = map[string]*kind{
		destinations.TypeDatadog:     newKind(destinations.TypeDatadog, destinations.CollectionConnections, datadogRules),
		destinations.TypeEventBridge: newKind(destinations.TypeEventBridge, destinations.CollectionConnections, eventBridgeRules),
		destinations.TypeOTLP:        newKind(destinations.TypeOTLP, destinations.CollectionConnections, otlpRules),
	}
	storageKind = newKind(destinations.TypeStorage, destinations.CollectionStorageProfiles, storageRules)
)

func connectionTypes() []string {
	var out []string
	for t := range connectionKinds {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

const endpointsOff = "custom endpoints are turned off for this installation (api.allow_custom_endpoints)"

func datadogRules(c datadog.Config, s Settings, errs *config.Errors) {
	if c.BaseURL != "" && !s.AllowCustomEndpoints {
		errs.Addf("base_url", endpointsOff)
	}
}

// otlpRules: an OTLP endpoint is a URL of the account's choosing by
// nature, so it is allowed without allow_custom_endpoints, but then only
// over https and to a public address: plain http, and a host that is a
// loopback, private, link-local or unspecified address (or a localhost
// name), would let an account reach the platform's own network. Names are
// not resolved here; that is for the network's egress policy.
func otlpRules(c otlp.Config, s Settings, errs *config.Errors) {
	if s.AllowCustomEndpoints {
		return
	}
	if c.AllowHTTP {
		errs.Addf("allow_http", "plain http is turned off for this installation; use an https endpoint (%s)", "api.allow_custom_endpoints")
	}
	u, err := url.Parse(strings.TrimSpace(c.Endpoint))
	if err != nil {
		return // Validate has said so
	}
	if u.Scheme == "http" && !c.AllowHTTP {
		return // Validate has said so
	}
	if reason := nonPublicHost(u.Hostname()); reason != "" {
		errs.Addf("endpoint", "%s is %s; only public addresses are allowed for this installation (api.allow_custom_endpoints)", u.Hostname(), reason)
	}
}

// nonPublicHost says why host is not a public address, or "".
func nonPublicHost(host string) string {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return "a loopback name"
	}
	ip, err := netip.ParseAddr(h)
	if err != nil {
		return ""
	}
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsPrivate(), cgnat.Contains(ip):
		return "a private address"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "a link-local address"
	case ip.IsUnspecified(), ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "not a unicast address"
	}
	return ""
}

// cgnat is the shared address space of RFC 6598, private in practice.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func eventBridgeRules(c eventbridge.Config, s Settings, errs *config.Errors) {
	if c.Endpoint != "" && !s.AllowCustomEndpoints {
		errs.Addf("endpoint", endpointsOff)
	}
	awsRules("credentials", c.Credentials, s, errs)
}

// awsRules keep a connection from signing with the platform's own AWS
// identity: it brings static keys, or a role to assume whose trust policy
// requires an external id (the confused-deputy guard AWS documents for
// third parties).
func awsRules(path string, c awsauth.Credentials, s Settings, errs *config.Errors) {
	if c.STSEndpoint != "" && !s.AllowCustomEndpoints {
		errs.Addf(path+".sts_endpoint", endpointsOff)
	}
	if s.AllowPlatformCredentials {
		return
	}
	switch c.Mode() {
	case awsauth.ModeDefaultChain:
		errs.Addf(path, "must give access_key_id and secret_access_key, or role_arn with external_id: the platform's own AWS identity is not available to accounts (api.allow_platform_credentials)")
	case awsauth.ModeAssumeRole:
		if !c.ExternalID.IsSet() {
			errs.Addf(path+".external_id", "is required with role_arn when the role is assumed with the platform's identity")
		}
	}
}

// azureDomains are the Blob endpoints of Azure's clouds.
var azureDomains = []string{".blob.core.windows.net", ".blob.core.usgovcloudapi.net", ".blob.core.chinacloudapi.cn"}

func storageRules(c objstore.Settings, s Settings, errs *config.Errors) {
	switch {
	case c.Local != nil || c.Kind == objstore.KindLocal:
		if !s.AllowLocalStorage {
			errs.Addf("kind", "local storage is turned off for this installation (api.allow_local_storage)")
		}
	case c.S3 != nil:
		if c.S3.Endpoint != "" && !s.AllowCustomEndpoints {
			errs.Addf("s3.endpoint", endpointsOff)
		}
		awsRules("s3.credentials", c.S3.Credentials, s, errs)
	case c.GCS != nil:
		if c.GCS.Endpoint != "" && !s.AllowCustomEndpoints {
			errs.Addf("gcs.endpoint", endpointsOff)
		}
		if !c.GCS.Credentials.IsSet() && !s.AllowPlatformCredentials {
			errs.Addf("gcs.credentials", "must be set (a service account key): the platform's own Google identity is not available to accounts (api.allow_platform_credentials)")
		}
	case c.Azure != nil:
		if u, err := url.Parse(c.Azure.AccountURL); err == nil && !s.AllowCustomEndpoints &&
			!slices.ContainsFunc(azureDomains, func(d string) bool { return strings.HasSuffix(strings.ToLower(u.Hostname()), d) }) {
			errs.Addf("azure.account_url", "must be an Azure Blob endpoint (https://<account>.blob.core.windows.net); %s", endpointsOff)
		}
		if c.Azure.SharedKey == nil && !c.Azure.SASToken.IsSet() && !s.AllowPlatformCredentials {
			errs.Addf("azure", "must give shared_key or sas_token: the platform's own Azure identity is not available to accounts (api.allow_platform_credentials)")
		}
	}
}
