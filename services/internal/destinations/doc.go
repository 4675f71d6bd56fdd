// Package destinations reads the destinations file: the named connections
// events can be delivered to and the routes that say which account's events
// go to which connections. Every consumer (the Datadog and EventBridge
// forwarders, the archiver) reads the same file and sees only the
// connections of its own type.
//
// The file is YAML, separate from the service's own config so that it can be
// a ConfigMap that changes under a running pod:
//
//	connections:
//	  dd-acme:                    # name: [a-z0-9][a-z0-9-_.]{0,62}
//	    type: datadog             # datadog | eventbridge | storage
//	    enabled: true             # default true
//	    settings:                 # type-specific, checked by the forwarder of that type
//	      site: datadoghq.eu
//	      api_key: {file: /var/run/secrets/dd-acme/api-key}
//	routes:
//	  - account: acc-123          # an account id, or "*" (quoted) for every account
//	    connections: [dd-acme]
//	    enabled: true             # default true
//	  - account: "*"
//	    connections: [dd-all]
//
// An empty file is valid and routes nothing.
//
// Parse and Load check the file and build a Table, an immutable snapshot.
// Table.Route gives the connections an account's events go to: those of the
// account's enabled routes and of the enabled "*" routes, enabled ones only.
// That is the tenant-isolation rule; nothing else in a Table can widen it.
//
// Settings stay raw YAML until the forwarder of the connection's type decodes
// them into its own struct with Connection.Decode, which rejects unknown keys.
// Settings may hold secrets (prefer {file: path} or {env: NAME} references, as
// config.Secret reads them), so nothing in this package logs or reports a
// settings value: errors name paths, lines and types, logs name connections
// and counts.
//
// A Watcher loads the file, re-reads it on every poll and on Reload, and
// publishes a new Table only when a new version parses and passes every check,
// including the forwarder's own; a bad version keeps the current table.
package destinations
