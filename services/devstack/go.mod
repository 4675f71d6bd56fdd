module github.com/auditstream/auditstream/services/devstack

go 1.26.0
