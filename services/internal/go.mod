module github.com/auditstream/auditstream/services/internal

go 1.26.0
