module github.com/auditstream/auditstream/services/auditctl

go 1.26.0
