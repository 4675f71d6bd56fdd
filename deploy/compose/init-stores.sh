#!/usr/bin/env bash
# Prepares docker-compose's local bucket stand-ins for the archiver, once per
# `docker compose up` (each step is idempotent):
#   - the S3 bucket in MinIO (SigV4-signed PUT, curl --aws-sigv4),
#   - the GCS bucket in fake-gcs-server (JSON API, no auth),
#   - the Azure Blob container in Azurite (SharedKey-signed PUT),
#   - the archive's Ed25519 signing key, generated on first start into the
#     archive-signing-key volume, readable only by the services' user.
# Runs in the Go build image (bash, curl and openssl); never prints a secret.
set -euo pipefail

BUCKET=${BUCKET:-auditstream-archive}
S3_URL=${S3_URL:-http://s3:9000}
GCS_URL=${GCS_URL:-http://gcs:4443}
AZURE_URL=${AZURE_URL:-http://azurite:10000}
AZURE_ACCOUNT=${AZURE_ACCOUNT:-devstoreaccount1}
SECRETS=${SECRETS:-/run/secrets}
KEY_DIR=${KEY_DIR:-/keys}
SERVICE_UID=${SERVICE_UID:-65532}

# status prints the HTTP status of a request; the body goes to a temp file
# shown only on failure.
body=$(mktemp)
status() { curl -sS -o "$body" -w '%{http_code}' "$@"; }
expect() { # expect WHAT STATUS OK...
	local what=$1 got=$2
	shift 2
	for ok in "$@"; do
		if [[ $got == "$ok" ]]; then
			echo "$what: ready ($got)"
			return 0
		fi
	done
	echo "$what: unexpected HTTP $got" >&2
	cat "$body" >&2
	return 1
}

# S3: 200 created, 409 BucketAlreadyOwnedByYou.
code=$(status -X PUT --aws-sigv4 "aws:amz:us-east-1:s3" \
	--user "$(cat "$SECRETS/s3-access-key-id"):$(cat "$SECRETS/s3-secret-access-key")" \
	"$S3_URL/$BUCKET")
expect "s3 bucket $BUCKET" "$code" 200 409

# GCS: 200 created, 409 exists.
code=$(status -X POST -H 'Content-Type: application/json' \
	--data "{\"name\":\"$BUCKET\"}" "$GCS_URL/storage/v1/b?project=auditstream")
expect "gcs bucket $BUCKET" "$code" 200 409

# Azure Blob: Create Container with a SharedKey signature; 201 created, 409
# exists.
date=$(LC_ALL=C TZ=GMT date '+%a, %d %b %Y %H:%M:%S GMT')
version=2021-08-06
path="/$AZURE_ACCOUNT/$BUCKET"
string_to_sign=$(printf 'PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:%s\nx-ms-version:%s\n/%s%s\nrestype:container' \
	"$date" "$version" "$AZURE_ACCOUNT" "$path")
hexkey=$(base64 -d < "$SECRETS/azurite-account-key" | od -An -v -tx1 | tr -d ' \n')
signature=$(printf '%s' "$string_to_sign" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$hexkey" -binary | base64 -w0)
code=$(status -X PUT -H "x-ms-date: $date" -H "x-ms-version: $version" -H 'Content-Length: 0' \
	-H "Authorization: SharedKey $AZURE_ACCOUNT:$signature" "$AZURE_URL$path?restype=container")
expect "azure container $BUCKET" "$code" 201 409

# Archive signing key (Ed25519, PKCS #8 PEM).
key="$KEY_DIR/ed25519.pem"
if [[ ! -s $key ]]; then
	umask 077
	openssl genpkey -algorithm ed25519 -out "$key.tmp"
	mv "$key.tmp" "$key"
	echo "archive signing key: generated"
else
	echo "archive signing key: kept"
fi
chown "$SERVICE_UID:$SERVICE_UID" "$key" 2>/dev/null || true
chmod 0400 "$key"
