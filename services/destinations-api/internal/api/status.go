package api

import (
	"net/http"
	"slices"

	"github.com/auditstream/auditstream/services/internal/connstatus"
	"github.com/auditstream/auditstream/services/internal/destinations"
)

// statusView is the answer of GET .../{name}/status: the resource and its
// health merged over the consumer replicas' fresh reports (ResourceStatus
// in openapi.json).
type statusView struct {
	Account string `json:"account"`
	Name    string `json:"name"`
	Type    string `json:"type"`
	Enabled bool   `json:"enabled"`
	Routed  bool   `json:"routed"`
	connstatus.View
}

// getStatus answers with a connection's or storage profile's health as the
// consumers published it to the status topic; the API adds nothing of its
// own, so with no fresh report the state is unknown.
func (a *API) getStatus(r *request) (int, any, *apiError) {
	cfg := a.store.Get(r.account)
	res := resourcesOf(cfg, r.collection)[r.name]
	if res == nil {
		return 0, nil, notFound(kindLabel(r.collection) + " " + r.name)
	}
	qualified := destinations.QualifiedConnection(r.account, r.name)
	routed := cfg.AuditLogs.Streaming && slices.Contains(cfg.AuditLogs.Connections, r.name)
	if r.collection == destinations.CollectionStorageProfiles {
		qualified = destinations.QualifiedStorageProfile(r.account, r.name)
		routed = cfg.AuditLogs.StorageProfile == r.name
	}
	return http.StatusOK, statusView{Account: r.account, Name: r.name, Type: res.Type, Enabled: res.Enabled,
		Routed: routed && res.Enabled, View: a.status.Connection(qualified)}, nil
}
