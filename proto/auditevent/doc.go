// Package auditevent is the codec for audit events: the seed-shaped JSON form,
// the Kafka record form (protobuf or JSON value, account id key), validation,
// event ids and access-token masking. Producers and every auditstream service
// share it, so an event means the same thing everywhere.
package auditevent
