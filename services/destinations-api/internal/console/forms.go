package console

import (
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// field is one input of a settings form; Path is its place in the
// settings object (dots for nesting), as the API's errors name it after
// "settings.".
type field struct {
	Path    string
	Label   string
	Help    string
	Input   string // text, secret, secret-area, select, checkbox, int
	Options []string
}

// formKind is the form of a connection type or a storage profile kind.
type formKind struct {
	Key    string // datadog, eventbridge, otlp, s3, gcs, azure, local
	Title  string
	Intro  string
	Fields []field
}

var awsCredentialFields = func(prefix string) []field {
	return []field{
		{Path: prefix + "credentials.access_key_id", Label: "Access key id", Input: "secret",
			Help: "Static keys of an IAM user of your AWS account; or leave both keys blank and give a role to assume."},
		{Path: prefix + "credentials.secret_access_key", Label: "Secret access key", Input: "secret"},
		{Path: prefix + "credentials.role_arn", Label: "Role ARN", Input: "text",
			Help: "A role in your account to assume, e.g. arn:aws:iam::123456789012:role/auditstream-writer."},
		{Path: prefix + "credentials.external_id", Label: "External id", Input: "secret",
			Help: "The external id the role's trust policy requires."},
	}
}

// connectionForms are the forms of connection types, with the fields and
// help of docs/datadog-forwarder.md, docs/eventbridge-forwarder.md and
// docs/otlp-forwarder.md.
var connectionForms = map[string]*formKind{
	"datadog": {Key: "datadog", Title: "Datadog", Intro: "Streams each event as a log to Datadog's logs intake.",
		Fields: []field{
			{Path: "site", Label: "Site", Input: "select", Help: "Your Datadog site.",
				Options: []string{"datadoghq.com", "us3.datadoghq.com", "us5.datadoghq.com", "datadoghq.eu", "ap1.datadoghq.com", "ap2.datadoghq.com", "ddog-gov.com"}},
			{Path: "api_key", Label: "API key", Input: "secret", Help: "A Datadog API key (Organization settings → API keys); sent as DD-API-KEY."},
			{Path: "tag_prefix", Label: "Tag prefix", Input: "text", Help: "Starts the tag names: <prefix>-workspace, <prefix>-action… (default auditstream)."},
			{Path: "source", Label: "Source", Input: "text", Help: "The logs' ddsource (default the tag prefix)."},
			{Path: "base_url", Label: "Custom intake URL", Input: "text", Help: "Replaces the site's intake URL; only if the installation allows custom endpoints."},
			{Path: "timeout", Label: "Timeout", Input: "text", Help: "Bounds one request, e.g. 30s (default)."},
		}},
	"eventbridge": {Key: "eventbridge", Title: "Amazon EventBridge", Intro: "Puts each event on an EventBridge bus of your AWS account.",
		Fields: append([]field{
			{Path: "region", Label: "Region", Input: "text", Help: "The bus's AWS region, e.g. eu-west-1 (may be left out when the bus is an ARN)."},
			{Path: "event_bus", Label: "Event bus", Input: "text", Help: "The bus's name or ARN (default \"default\")."},
			{Path: "source", Label: "Source", Input: "text", Help: "Every entry's Source (default auditstream.audit-log); sources starting with aws. are reserved."},
			{Path: "detail_type", Label: "Detail type", Input: "text", Help: "Every entry's DetailType (default \"Audit Event\")."},
		}, append(awsCredentialFields(""),
			field{Path: "endpoint", Label: "Custom endpoint", Input: "text", Help: "Replaces the regional endpoint; only if the installation allows custom endpoints."},
			field{Path: "timeout", Label: "Timeout", Input: "text", Help: "Bounds one PutEvents call, e.g. 10s (default)."},
		)...)},
	"otlp": {Key: "otlp", Title: "OpenTelemetry (OTLP)", Intro: "Sends each event as an OpenTelemetry log record to Grafana Cloud, Grafana Loki, an OpenTelemetry Collector or any OTLP/HTTP receiver.",
		Fields: []field{
			{Path: "endpoint", Label: "OTLP endpoint", Input: "text", Help: "The receiver's base OTLP URL, https://...; /v1/logs is appended. Grafana Cloud: the stack's OTLP endpoint, e.g. https://otlp-gateway-prod-eu-west-2.grafana.net/otlp."},
			{Path: "auth.username", Label: "User (basic auth)", Input: "text", Help: "Grafana Cloud: the stack's instance id. Leave blank for bearer auth."},
			{Path: "auth.password", Label: "Password (basic auth)", Input: "secret", Help: "Grafana Cloud: an access policy token with logs:write."},
			{Path: "auth.token", Label: "Bearer token", Input: "secret", Help: "Sent as Authorization: Bearer; instead of user and password."},
			{Path: "tenant_id", Label: "Tenant", Input: "text", Help: "Sent as X-Scope-OrgID, for a multi-tenant Loki."},
			{Path: "encoding", Label: "Encoding", Input: "select", Help: "protobuf (default) or json.", Options: []string{"protobuf", "json"}},
			{Path: "compression", Label: "Compression", Input: "select", Help: "gzip (default) or none.", Options: []string{"gzip", "none"}},
			{Path: "timeout", Label: "Timeout", Input: "text", Help: "Bounds one request, e.g. 30s (default)."},
		}},
}

// storageForms are the forms of storage profile kinds
// (docs/archive-storage.md).
var storageForms = map[string]*formKind{
	"s3": {Key: "s3", Title: "Amazon S3", Intro: "Daily archive files in an S3 bucket of your AWS account.",
		Fields: append([]field{
			{Path: "s3.bucket", Label: "Bucket", Input: "text"},
			{Path: "s3.region", Label: "Region", Input: "text", Help: "The bucket's region, e.g. eu-west-1."},
			{Path: "prefix", Label: "Prefix", Input: "text", Help: "Objects are written under this key prefix."},
			{Path: "s3.storage_class", Label: "Storage class", Input: "text", Help: "Of new objects (default the bucket's, STANDARD)."},
			{Path: "s3.sse_kms_key_id", Label: "SSE-KMS key", Input: "text", Help: "Turns on SSE-KMS with this key (id, ARN or alias); empty keeps the bucket's default encryption."},
		}, append(awsCredentialFields("s3."),
			field{Path: "s3.endpoint", Label: "Custom endpoint", Input: "text", Help: "An S3-compatible store; only if the installation allows custom endpoints."},
			field{Path: "s3.path_style", Label: "Path-style addressing", Input: "checkbox", Help: "Most S3-compatible stores need it."},
		)...)},
	"gcs": {Key: "gcs", Title: "Google Cloud Storage", Intro: "Daily archive files in a GCS bucket.",
		Fields: []field{
			{Path: "gcs.bucket", Label: "Bucket", Input: "text"},
			{Path: "prefix", Label: "Prefix", Input: "text", Help: "Objects are written under this key prefix."},
			{Path: "gcs.credentials", Label: "Service account key (JSON)", Input: "secret-area", Help: "The content of a service account key file that may create objects in the bucket."},
		}},
	"azure": {Key: "azure", Title: "Azure Blob Storage", Intro: "Daily archive files in an Azure Blob container.",
		Fields: []field{
			{Path: "azure.account_url", Label: "Account URL", Input: "text", Help: "https://<account>.blob.core.windows.net"},
			{Path: "azure.container", Label: "Container", Input: "text"},
			{Path: "prefix", Label: "Prefix", Input: "text", Help: "Blobs are written under this prefix."},
			{Path: "azure.sas_token", Label: "SAS token", Input: "secret", Help: "A container or account SAS with create, read and list permission; or a shared key below."},
			{Path: "azure.shared_key.account_name", Label: "Storage account name", Input: "text"},
			{Path: "azure.shared_key.account_key", Label: "Storage account key", Input: "secret"},
		}},
	"local": {Key: "local", Title: "Local directory", Intro: "A directory on the archiver's disk: development installations only.",
		Fields: []field{
			{Path: "local.dir", Label: "Directory", Input: "text"},
			{Path: "prefix", Label: "Prefix", Input: "text"},
		}},
}

func sortedKeys(m map[string]*formKind) []string { return slices.Sorted(maps.Keys(m)) }

// fieldView is a field as a page shows it.
type fieldView struct {
	field
	ID      string // the input's id and name
	Value   string // never a secret's value
	Checked bool
	Set     bool   // a secret with a stored value
	Last4   string // of that value
	Error   string
}

// fieldViews renders the fields of k from stored settings (as the API shows
// them: secrets as {"set": true, "last4": ...}) and, after a failed save,
// the submitted form; secret inputs are always left blank.
func fieldViews(k *formKind, stored map[string]any, submitted url.Values, errs map[string]string) []fieldView {
	out := make([]fieldView, 0, len(k.Fields))
	for _, f := range k.Fields {
		v := fieldView{field: f, ID: "settings." + f.Path, Error: errs["settings."+f.Path]}
		cur, ok := getPath(stored, f.Path)
		switch f.Input {
		case "secret", "secret-area":
			if m, isObj := cur.(map[string]any); ok && isObj {
				v.Set, _ = m["set"].(bool)
				v.Last4, _ = m["last4"].(string)
			}
		case "checkbox":
			b, _ := cur.(bool)
			v.Checked = b
			if submitted != nil {
				v.Checked = submitted.Get(v.ID) == "on"
			}
		default:
			if ok && cur != nil {
				v.Value = scalar(cur)
			}
			if submitted != nil {
				v.Value = submitted.Get(v.ID)
			}
		}
		out = append(out, v)
	}
	return out
}

func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// settingsFrom builds the settings to PUT: the stored settings (secrets as
// the API reads them, which keeps them) with each field of the form
// applied. A blank secret keeps the stored one; any other blank field is
// left out, so its default applies.
func settingsFrom(k *formKind, stored map[string]any, form url.Values) map[string]any {
	s := deepCopy(stored)
	if s == nil {
		s = map[string]any{}
	}
	for _, f := range k.Fields {
		id := "settings." + f.Path
		val := strings.TrimSpace(form.Get(id))
		switch f.Input {
		case "secret", "secret-area":
			if f.Input == "secret-area" {
				val = form.Get(id)
				if strings.TrimSpace(val) == "" {
					val = ""
				}
			}
			// Blank keeps what the stored settings hold: the API's read
			// view of the secret ({"set": true, ...}), which a PUT
			// keeps, or nothing.
			if val != "" {
				setPath(s, f.Path, val)
			}
		case "checkbox":
			if form.Get(id) == "on" {
				setPath(s, f.Path, true)
			} else {
				deletePath(s, f.Path)
			}
		case "int":
			if val == "" {
				deletePath(s, f.Path)
			} else if n, err := strconv.ParseInt(val, 10, 64); err == nil {
				setPath(s, f.Path, n)
			} else {
				setPath(s, f.Path, val) // the API names the field and the type
			}
		default:
			if val == "" {
				deletePath(s, f.Path)
			} else {
				setPath(s, f.Path, val)
			}
		}
	}
	pruneEmpty(s)
	return s
}

func deepCopy(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	b, _ := json.Marshal(m)
	var out map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	_ = dec.Decode(&out)
	return out
}

func getPath(m map[string]any, path string) (any, bool) {
	var cur any = m
	for _, part := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// setPath sets path's value, creating the objects on the way.
func setPath(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	obj := m
	for _, part := range parts[:len(parts)-1] {
		next, ok := obj[part].(map[string]any)
		if !ok {
			next = map[string]any{}
			obj[part] = next
		}
		obj = next
	}
	obj[parts[len(parts)-1]] = v
}

func deletePath(m map[string]any, path string) {
	parts := strings.Split(path, ".")
	obj := m
	for _, part := range parts[:len(parts)-1] {
		next, ok := obj[part].(map[string]any)
		if !ok {
			return
		}
		obj = next
	}
	delete(obj, parts[len(parts)-1])
}

// pruneEmpty drops objects left empty by blank fields.
func pruneEmpty(m map[string]any) {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			pruneEmpty(sub)
			if len(sub) == 0 {
				delete(m, k)
			}
		}
	}
}
