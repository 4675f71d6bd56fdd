package objstore

import (
	"context"
	"fmt"
	"io"
	"iter"
	"strings"
)

// WithPrefix returns a Store that keeps every key of s under prefix: keys
// given to it and Info.Key given back are relative to the prefix. A prefix
// names a folder, so "audit" and "audit/" are the same prefix. An empty
// prefix returns s itself.
func WithPrefix(s Store, prefix string) (Store, error) {
	if err := ValidPrefix(prefix); err != nil {
		return nil, err
	}
	if prefix == "" {
		return s, nil
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &prefixed{inner: s, prefix: prefix}, nil
}

type prefixed struct {
	inner  Store
	prefix string
}

func (p *prefixed) full(key string) (string, error) {
	if err := ValidKey(key); err != nil {
		return "", err
	}
	return p.prefix + key, nil
}

func (p *prefixed) rel(info Info) Info {
	info.Key = strings.TrimPrefix(info.Key, p.prefix)
	return info
}

func (p *prefixed) Create(ctx context.Context, key string, body io.ReaderAt, size int64, opts CreateOptions) (Info, error) {
	full, err := p.full(key)
	if err != nil {
		return Info{}, fmt.Errorf("create %s: %w", key, err)
	}
	info, err := p.inner.Create(ctx, full, body, size, opts)
	return p.rel(info), err
}

func (p *prefixed) Open(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	full, err := p.full(key)
	if err != nil {
		return nil, Info{}, fmt.Errorf("open %s: %w", key, err)
	}
	rc, info, err := p.inner.Open(ctx, full)
	return rc, p.rel(info), err
}

func (p *prefixed) Stat(ctx context.Context, key string) (Info, error) {
	full, err := p.full(key)
	if err != nil {
		return Info{}, fmt.Errorf("stat %s: %w", key, err)
	}
	info, err := p.inner.Stat(ctx, full)
	return p.rel(info), err
}

func (p *prefixed) List(ctx context.Context, prefix string) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		if err := ValidPrefix(prefix); err != nil {
			yield(Info{}, fmt.Errorf("list %s: %w", prefix, err))
			return
		}
		for info, err := range p.inner.List(ctx, p.prefix+prefix) {
			if !yield(p.rel(info), err) || err != nil {
				return
			}
		}
	}
}

func (p *prefixed) Describe() string {
	return strings.TrimSuffix(p.inner.Describe(), "/") + "/" + strings.TrimSuffix(p.prefix, "/")
}

func (p *prefixed) Close() error { return p.inner.Close() }
