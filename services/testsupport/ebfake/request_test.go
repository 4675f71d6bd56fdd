package ebfake

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

var requestBodies = []string{
	`{"Entries":[{"Detail":"{\"id\":\"e-1\",\"a\":\"\\u00e9 \\ud83d\\ude80 \\n\"}","DetailType":"Audit Event","EventBusName":"audit","Resources":["arn:aws:s3:::b"],"Source":"scalr.audit-log","Time":1.708088318577E9}]}`,
	`{ "Entries" : [ { "Source" : "s" , "DetailType":"d", "Detail":"{}", "Resources":[] , "TraceHeader":"Root=1" } , {"Detail":"{\"k\":\"日本\"}"} ] , "EndpointId":"abc.veo" }`,
	`{"Entries":[]}`,
	`{}`,
	`{"Entries":[{"Detail":"\/\b\f\r\t\"\\"}]}`,
	`{"Entries":[{"Unknown":"x"}]}`,
	`{"Other":1}`,
	`{"Entries":[{"Detail":null}]}`,
	`{"Entries":[{"Detail":"\ud800"}]}`,
	`{"Entries":[{"Time":"1"}]}`,
	`{"Entries":[{"Detail":"a"}]} extra`,
	`{"Entries":[{"Detail":"a",}]}`,
	"{\"Entries\":[{\"Detail\":\"\xff\"}]}",
	`[1,2]`,
	`{"Entries":[{"Time":00}]}`,
	`{"Entries":[{"Time":-0.5e+3}]}`,
	`{"Entries":[{"Time":1.}]}`,
	``,
}

// The fast path reads what encoding/json reads, or declines.
func TestParseRequestAgreesWithEncodingJSON(t *testing.T) {
	for _, body := range requestBodies {
		checkParse(t, []byte(body))
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, body := range requestBodies {
		f.Add([]byte(body))
	}
	f.Fuzz(checkParse)
}

func checkParse(t *testing.T, body []byte) {
	fast, ok := parseRequest(body)
	if !ok {
		return
	}
	var strict request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&strict); err != nil || dec.More() {
		t.Fatalf("fast path read %q, encoding/json refuses it: %v", body, err)
	}
	if !reflect.DeepEqual(fast, strict) {
		t.Fatalf("%q: fast %+v, encoding/json %+v", body, fast, strict)
	}
}
