package auditevent

// Internals for the tests of package auditevent_test.
var (
	DecodeJSONFast      = decodeJSONFast
	DecodeJSONReference = decodeJSONReference
	ParseTimestampFast  = parseTimestampFast
	EventProtoSupported = eventProtoSupported
	DecodeProtobufFast  = decodeProtobufFast
	ValidateDecoded     = validateDecoded
	NewRecordDecoded    = newRecordDecoded
)
