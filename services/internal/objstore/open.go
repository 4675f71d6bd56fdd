package objstore

import (
	"context"
	"fmt"
	"sync"
)

// Opener builds a Store of one kind from validated Settings with their
// defaults (without the prefix, which Open applies).
type Opener func(ctx context.Context, s Settings) (Store, error)

var (
	openersMu sync.RWMutex
	openers   = map[string]Opener{}
)

// Register makes a kind available to Open. Each backend package registers
// its kind when it is imported (objstore/all imports every one), so a
// program links only the storage clients (S3, GCS, Azure Blob) of the kinds
// it imports. The AWS SDK's configuration and credential packages come in
// with Settings (its credentials are awsauth's) whatever is imported.
func Register(kind string, open Opener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	if _, dup := openers[kind]; dup {
		panic("objstore: kind " + kind + " registered twice")
	}
	openers[kind] = open
}

// Open validates s and returns the Store it describes, with every key under
// s.Prefix.
func Open(ctx context.Context, s Settings) (Store, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("storage settings: %w", err)
	}
	s = s.WithDefaults()
	openersMu.RLock()
	open := openers[s.Kind]
	openersMu.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("storage kind %s is not linked into this program (import objstore/all)", s.Kind)
	}
	st, err := open(ctx, s)
	if err != nil {
		return nil, err
	}
	p, err := WithPrefix(st, s.Prefix)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	return p, nil
}
