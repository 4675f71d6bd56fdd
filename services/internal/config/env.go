package config

import (
	"encoding"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ApplyEnv sets fields of dst from AUDITSTREAM_ variables in env. Scalars,
// durations, types with UnmarshalText and comma-separated string lists can be
// set; a variable that names no such field is an error.
func ApplyEnv(dst any, env []string) error {
	fields := map[string]reflect.Value{}
	collectEnvFields(reflect.ValueOf(dst).Elem(), "", fields)
	var errs Errors
	var unknown []string
	for _, kv := range env {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		field, ok := fields[name]
		if !ok {
			if !serviceLink.MatchString(name) {
				unknown = append(unknown, name)
			}
			continue
		}
		if err := setFromString(field, value); err != nil {
			// the value may be a secret: name the variable, never echo it
			errs.Addf(name, "%v", err)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		errs.Addf("environment", "%s matches no config key", strings.Join(unknown, ", "))
	}
	return errs.Err()
}

// serviceLink matches the variables Kubernetes injects for every Service in
// the namespace (a Service "auditstream-ingest" gives
// AUDITSTREAM_INGEST_SERVICE_HOST, AUDITSTREAM_INGEST_PORT_8080_TCP_ADDR...);
// they are not config keys but must not stop a pod from starting.
var serviceLink = regexp.MustCompile(`_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT|PORT_[0-9]+_(TCP|UDP|SCTP)(_(PROTO|PORT|ADDR))?)$`)

var (
	durationType        = reflect.TypeFor[time.Duration]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func collectEnvFields(v reflect.Value, path string, out map[string]reflect.Value) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "-" {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		p := tag
		if path != "" {
			p = path + "." + tag
		}
		fv := v.Field(i)
		if settable(fv) {
			out[EnvName(p)] = fv
		} else if fv.Kind() == reflect.Struct {
			collectEnvFields(fv, p, out)
		}
	}
}

func settable(v reflect.Value) bool {
	if v.Addr().Type().Implements(textUnmarshalerType) || v.Type() == durationType {
		return true
	}
	switch v.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64, reflect.Float64:
		return true
	case reflect.Slice:
		return v.Type().Elem().Kind() == reflect.String
	}
	return false
}

func setFromString(v reflect.Value, s string) error {
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(s))
	}
	if v.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("not a duration (for example 30s or 5m)")
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("not a boolean (true or false)")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("not a non-negative integer")
		}
		v.SetUint(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("not a number")
		}
		v.SetFloat(f)
	case reflect.Slice:
		var items []string
		for item := range strings.SplitSeq(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items))
	}
	return nil
}
