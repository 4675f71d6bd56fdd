package devstack

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/auditstream/auditstream/services/internal/secretbox"
)

// DestinationsAPI is the dev stack's destinations API service.
const DestinationsAPI = "destinations-api"

// DefaultDestinationsAPIAddr is the API's listen address when its config
// names none.
const DefaultDestinationsAPIAddr = "127.0.0.1:8084"

// DevToken is the bearer token of the dev stack's destinations API. It is
// public on purpose, so the quick start's curl lines work as printed: its
// hash is only in services/devstack/config/destinations-api.yaml, and the
// API listens on loopback. Never put its hash in another installation.
const DevToken = "dev-token-make-run-only"

// DevKeyID is the id of the key in the keyring the dev stack creates.
const DevKeyID = "devstack-1"

// serviceSecrets are the parts of a service config devstack prepares
// before the service starts.
type serviceSecrets struct {
	HTTP struct {
		Addr string `yaml:"addr"`
	} `yaml:"http"`
	// The destinations API's own key-encryption key and tokens.
	Encryption keyringRef `yaml:"encryption"`
	Auth       struct {
		Tokens []struct {
			Name   string `yaml:"name"`
			SHA256 string `yaml:"sha256"`
		} `yaml:"tokens"`
	} `yaml:"auth"`
	// The consumers' key-encryption key.
	Destinations struct {
		Encryption keyringRef `yaml:"encryption"`
	} `yaml:"destinations"`
}

// keyringRef is the part of a secretbox.Config devstack looks at: a KMS
// key needs nothing prepared.
type keyringRef struct {
	KeyringFile string `yaml:"keyring_file"`
}

// prepareKeyrings creates, for every keyring file the services' configs
// name (encryption.keyring_file of the destinations API,
// destinations.encryption.keyring_file of the consumers) that does not
// exist yet, a keyring with one new random key. The API seals secrets with
// it and the consumers open them, so they must all name the same file;
// names is returned sorted.
func prepareKeyrings(svcs []Service, log *zap.Logger) ([]string, error) {
	users := map[string][]string{} // keyring file -> services
	for _, svc := range svcs {
		cfg, err := readServiceSecrets(svc.Config)
		if err != nil {
			return nil, err
		}
		for _, path := range []string{cfg.Encryption.KeyringFile, cfg.Destinations.Encryption.KeyringFile} {
			if path = strings.TrimSpace(path); path != "" && !slices.Contains(users[path], svc.Name) {
				users[path] = append(users[path], svc.Name)
			}
		}
	}
	var paths []string
	for p := range users {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	if len(paths) > 1 {
		var desc []string
		for _, p := range paths {
			desc = append(desc, fmt.Sprintf("%s (%s)", p, strings.Join(users[p], ", ")))
		}
		return nil, fmt.Errorf("the service configs name different keyring files: %s; the destinations API seals secrets with its keyring and the forwarders and the archiver open them, so all must name the same file", strings.Join(desc, ", "))
	}
	for _, p := range paths {
		_, err := os.Stat(p)
		switch {
		case err == nil:
			log.Info("using the destinations keyring", zap.String("path", p))
			continue
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("keyring file %s: %w", p, err)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, fmt.Errorf("keyring file %s: %w", p, err)
		}
		if err := secretbox.GenerateKeyring(p, DevKeyID); err != nil {
			return nil, err
		}
		log.Info("created the destinations keyring (one random key, mode 0600)", zap.String("path", p), zap.String("key_id", DevKeyID))
	}
	return paths, nil
}

// destinationsAPIInfo reads the API's URL from its config, and the dev
// token when the config accepts it.
func destinationsAPIInfo(svc Service, env []string) (url, token string, err error) {
	addr, err := serviceAddr(svc.Config, env, DefaultDestinationsAPIAddr)
	if err != nil {
		return "", "", err
	}
	cfg, err := readServiceSecrets(svc.Config)
	if err != nil {
		return "", "", err
	}
	sum := sha256.Sum256([]byte(DevToken))
	for _, t := range cfg.Auth.Tokens {
		if strings.EqualFold(t.SHA256, hex.EncodeToString(sum[:])) {
			token = DevToken
		}
	}
	return "http://" + addr, token, nil
}

func readServiceSecrets(path string) (*serviceSecrets, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cfg serviceSecrets
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return &cfg, nil
}
