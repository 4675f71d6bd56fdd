module github.com/auditstream/auditstream/services/ingest

go 1.26.0
