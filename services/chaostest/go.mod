module github.com/auditstream/auditstream/services/chaostest

go 1.26.0

require (
	github.com/auditstream/auditstream/services/testsupport v0.0.0
	github.com/twmb/franz-go v1.22.3
	github.com/twmb/franz-go/pkg/kadm v1.19.0
	github.com/twmb/franz-go/pkg/kfake v0.0.0-20260918054303-01f206a7e32c
	github.com/twmb/franz-go/pkg/kmsg v1.15.1
	golang.org/x/sync v0.24.0
)

require (
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/pierrec/lz4/v4 v4.1.33 // indirect
)

replace (
	github.com/auditstream/auditstream/proto => ../../proto
	github.com/auditstream/auditstream/services/internal => ../internal
	github.com/auditstream/auditstream/services/testsupport => ../testsupport
)
