package archive

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"
)

func TestGroupNamesRoundTripAndSort(t *testing.T) {
	g := Group{Window: WindowOf(day0.Add(5*time.Hour), 24*time.Hour), Partition: 7, First: 9, Last: 120}
	if got, want := ObjectKey("acc-1", g), "acc-1/2024/02/16/20240216T000000Z-86400s-p00007-00000000000000000009-00000000000000000120.json.gz"; got != want {
		t.Fatalf("key %s, want %s", got, want)
	}
	ref, ok := ParseObjectKey(ObjectKey("acc-1", g))
	if !ok || ref.Account != "acc-1" || ref.Group != g || ref.Conflict {
		t.Fatalf("parse: %+v %v", ref, ok)
	}
	ref, ok = ParseObjectKey(ConflictKey("acc-1", g, strings.Repeat("ab", 32)))
	if !ok || !ref.Conflict || ref.Group != g {
		t.Fatalf("conflict key parse: %+v %v", ref, ok)
	}
	m, ok := ParseManifestKey(ManifestKey("acc-1", 12, g))
	if !ok || m.Sequence != 12 || m.Group != g || m.Account != "acc-1" {
		t.Fatalf("manifest parse: %+v %v", m, ok)
	}
	later := g
	later.First, later.Last = 121, 1000
	if !(ObjectKey("a", g) < ObjectKey("a", later)) {
		t.Fatal("keys do not sort in offset order")
	}
	for _, bad := range []string{"", "acc/2024/02/16/x.json.gz", "acc/2024/02/17/" + g.Name() + ".json.gz", "_manifests/2024/02/16/" + g.Name() + ".json.gz"} {
		if _, ok := ParseObjectKey(bad); ok {
			t.Errorf("ParseObjectKey(%q) accepted", bad)
		}
	}
}

func TestManifestSignAndTamper(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	s := NewSigner(priv)
	m := &Manifest{Account: "acc-1", Sequence: 1, Window: ManifestSpan{Start: day0, End: day0.Add(24 * time.Hour)},
		Objects: []ManifestObject{{Key: "acc-1/2024/02/16/x.json.gz", SHA256: strings.Repeat("0", 64), Size: 10, Records: 2}}}
	data, err := s.Seal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenManifest(data, pub); err != nil {
		t.Fatalf("sealed manifest does not open: %v", err)
	}
	other, _, _ := ed25519.GenerateKey(rand.Reader)
	if _, err := OpenManifest(data, other); err == nil {
		t.Fatal("manifest verified with another key")
	}
	for i := range data {
		changed := bytes.Clone(data)
		changed[i] ^= 0x01
		if _, err := OpenManifest(changed, pub); err == nil {
			t.Fatalf("flipping byte %d (%q) went unnoticed", i, data[i])
		}
	}
	unsigned, _ := (*Signer)(nil).Seal(m)
	if _, err := OpenManifest(unsigned, pub); err != ErrUnsigned {
		t.Fatalf("unsigned manifest with a key: %v, want ErrUnsigned", err)
	}
	k, err := ParseSigningKey(MarshalSigningKey(priv))
	if err != nil || !k.Public().Equal(pub) {
		t.Fatalf("PEM round trip: %v", err)
	}
	p2, err := ParsePublicKey(MarshalPublicKey(pub))
	if err != nil || !p2.Equal(pub) {
		t.Fatalf("public PEM round trip: %v", err)
	}
	for _, bad := range []string{"", "not pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"} {
		if _, err := ParseSigningKey([]byte(bad)); err == nil {
			t.Errorf("ParseSigningKey(%q) accepted", bad)
		}
	}
}

func TestSpoolBuildIsDeterministicAndDedupes(t *testing.T) {
	build := func() ([]byte, ObjectStats) {
		sp, err := NewSpool(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		lines := []struct{ acct, id string }{{"b", "1"}, {"a", "2"}, {"b", "3"}, {"b", "1"}, {"a", "4"}}
		for i, l := range lines {
			if err := sp.Add(l.acct, l.id, int64(i+10), day0.Add(time.Duration(i)*time.Minute), []byte(`{"id":"`+l.id+`"}`)); err != nil {
				t.Fatal(err)
			}
		}
		batches, err := sp.Partition()
		if err != nil {
			t.Fatal(err)
		}
		if len(batches) != 2 || batches[0].Account != "a" || batches[1].Account != "b" {
			t.Fatalf("batches %+v", batches)
		}
		var buf bytes.Buffer
		st, err := sp.Build(batches[1], &buf)
		if err != nil {
			t.Fatal(err)
		}
		return buf.Bytes(), st
	}
	b1, s1 := build()
	b2, s2 := build()
	if !bytes.Equal(b1, b2) || s1 != s2 {
		t.Fatal("the same events built different objects")
	}
	if s1.Records != 2 || s1.Duplicates != 1 || s1.FirstOffset != 10 || s1.LastOffset != 12 {
		t.Fatalf("stats %+v, want 2 records (one duplicate dropped), offsets 10..12", s1)
	}
}
