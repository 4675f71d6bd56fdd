// Package all registers every destination type with sinks: import it for
// its side effect in a program that builds sinks of any type. A forwarder
// imports only its own type's registration (sinks/<type>) instead.
//
//	import _ "github.com/auditstream/auditstream/services/internal/sinks/all"
package all

import (
	_ "github.com/auditstream/auditstream/services/internal/sinks/datadog"
	_ "github.com/auditstream/auditstream/services/internal/sinks/eventbridge"
	_ "github.com/auditstream/auditstream/services/internal/sinks/otlp"
)
